#pragma once
// The apps' harness (core/app.hpp) with HDF5 set up: core sits below io and knows no HDF5, so the
// one place that turns the library's error printing off for every app is here.
#include <string>

#include "qshard/core/app.hpp"

namespace qshard {

// An App named `name` whose start silences HDF5 (h5::silence_library_errors: failures become
// exceptions with context, no clean-up at exit); its failures are printed by every process.
App hdf5_app(std::string name);

}  // namespace qshard
