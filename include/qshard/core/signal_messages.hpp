#pragma once
// One line on stderr when a signal ends the process, which then dies of the signal as before:
//  - SIGTERM, SIGINT: "<prefix>stopped by SIGTERM<termination_hint>" (under mpirun, which sends
//    SIGTERM to every rank when it is itself stopped, the job otherwise ends silently);
//  - SIGBUS: "<prefix>bus error reading FILE at offset N: ..." naming the memory-mapped file (from
//    /proc/self/maps) whose page could not be read: a model file truncated while the job runs.
// The handlers linger 0.2 s after writing, so that mpirun forwards the line before it tears the
// job down. Install once, from main, after MPI_Init (Open MPI installs handlers of its own).
#include <string>

namespace qshard {

void install_signal_messages(const std::string& prefix, const std::string& termination_hint);

}  // namespace qshard
