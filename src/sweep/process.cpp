#include "qshard/sweep/process.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "qshard/core/error.hpp"

namespace qshard {

std::vector<std::string> split_command(const std::string& command) {
  std::vector<std::string> words;
  std::istringstream in(command);
  std::string word;
  while (in >> word) words.push_back(word);
  return words;
}

int run_process(const std::vector<std::string>& argv) {
  require(!argv.empty(), "run_process: empty command");
  std::vector<char*> pointers;
  for (const std::string& arg : argv) pointers.push_back(const_cast<char*>(arg.c_str()));
  pointers.push_back(nullptr);
  // A pipe closed on exec tells the parent whether execvp succeeded (and errno if not).
  int pipe_fds[2];
  require(pipe2(pipe_fds, O_CLOEXEC) == 0, "cannot create a pipe: ", std::strerror(errno));
  const pid_t pid = fork();
  if (pid < 0) {
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    throw Error(str("cannot fork to run ", argv[0], ": ", std::strerror(errno)));
  }
  if (pid == 0) {
    close(pipe_fds[0]);
    execvp(pointers[0], pointers.data());
    const int error = errno;
    [[maybe_unused]] const auto written = write(pipe_fds[1], &error, sizeof error);
    _exit(127);
  }
  close(pipe_fds[1]);
  int exec_error = 0;
  ssize_t got = 0;
  do {
    got = read(pipe_fds[0], &exec_error, sizeof exec_error);
  } while (got < 0 && errno == EINTR);
  close(pipe_fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    require(errno == EINTR, "waitpid for ", argv[0], " failed: ", std::strerror(errno));
  }
  require(got != static_cast<ssize_t>(sizeof exec_error), "cannot run '", argv[0],
          "': ", std::strerror(exec_error));
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::string shell_quote(const std::vector<std::string>& argv) {
  std::string out;
  for (const std::string& arg : argv) {
    if (!out.empty()) out += ' ';
    const bool plain = !arg.empty() && arg.find_first_not_of(
                                           "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                           "0123456789_-+=/.,:@%") == std::string::npos;
    if (plain) {
      out += arg;
      continue;
    }
    out += '\'';
    for (const char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    out += '\'';
  }
  return out;
}

}  // namespace qshard
