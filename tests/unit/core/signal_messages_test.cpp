// One line when a signal ends the process (issue 14): SIGTERM names itself and the hint (under
// mpirun the job otherwise ended silently); SIGBUS names the memory-mapped file that was truncated.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "qshard/core/signal_messages.hpp"

namespace qshard {
namespace {

TEST(SignalMessages, TerminationPrintsOneLineAndDiesOfTheSignal) {
  EXPECT_EXIT(
      {
        install_signal_messages("qshard-test (rank 1): ", "; continue with --resume");
        std::raise(SIGTERM);
      },
      testing::KilledBySignal(SIGTERM),
      "qshard-test \\(rank 1\\): stopped by SIGTERM; continue with --resume");
}

TEST(SignalMessages, BusErrorNamesTheTruncatedMappedFile) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("qshard-sigbus-" + std::to_string(std::random_device{}()) + ".bin");
  {
    std::ofstream file(path, std::ios::binary);
    const std::string page(4096, 'x');
    file << page << page;
  }
  EXPECT_EXIT(
      {
        install_signal_messages("qshard-test: ", "");
        const int fd = ::open(path.c_str(), O_RDONLY);
        const auto* data =
            static_cast<const volatile char*>(::mmap(nullptr, 8192, PROT_READ, MAP_PRIVATE, fd, 0));
        std::filesystem::resize_file(path, 0);
        std::fprintf(stderr, "read %c\n", data[4096 + 10]);  // past the new end: SIGBUS
      },
      testing::KilledBySignal(SIGBUS),
      "qshard-test: bus error \\(SIGBUS\\) reading .*qshard-sigbus-.*\\.bin at offset 4106: the "
      "file was truncated");
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace qshard
