#include "qshard/core/signal_messages.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <ctime>

namespace qshard {
namespace {

// The handlers' state: the text they print, fixed before they are installed (the one global a
// signal handler needs; everything below is async-signal-safe: open, read, write, nanosleep).
struct Texts {
  char prefix[256] = {};
  char hint[1024] = {};
};
Texts g_texts;

// A line assembled in a fixed buffer, written with one write(2) so lines of ranks never mix.
class Line {
 public:
  Line& operator<<(const char* text) {
    while (*text != '\0' && length_ + 1 < sizeof text_) text_[length_++] = *text++;
    return *this;
  }
  Line& number(std::uint64_t value, unsigned base) {
    char digits[24];
    int n = 0;
    do {
      digits[n++] = "0123456789abcdef"[value % base];
      value /= base;
    } while (value != 0);
    while (n > 0 && length_ + 1 < sizeof text_) text_[length_++] = digits[--n];
    return *this;
  }
  void write_to_stderr() {
    text_[length_++] = '\n';
    for (std::size_t done = 0; done < length_;) {
      const ssize_t n = ::write(STDERR_FILENO, text_ + done, length_ - done);
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
  }

 private:
  char text_[2048] = {};
  std::size_t length_ = 0;
};

void linger() {
  timespec pause{0, 200'000'000};
  while (::nanosleep(&pause, &pause) != 0) {
  }
}

// Parses a hexadecimal number at `p`, advancing it.
std::uint64_t hex(const char*& p) {
  std::uint64_t value = 0;
  for (;; ++p) {
    const char c = *p;
    if (c >= '0' && c <= '9')
      value = value * 16 + static_cast<std::uint64_t>(c - '0');
    else if (c >= 'a' && c <= 'f')
      value = value * 16 + static_cast<std::uint64_t>(c - 'a' + 10);
    else
      return value;
  }
}

void skip_field(const char*& p) {
  while (*p == ' ') ++p;
  while (*p != ' ' && *p != '\0') ++p;
}

// One line of /proc/self/maps, "start-end perms offset dev inode path": when its mapping holds
// `address`, copies the path and gives the offset of `address` in the file.
bool parse_maps_line(const char* p, std::uint64_t address, char* path, std::size_t capacity,
                     std::uint64_t& offset) {
  const std::uint64_t start = hex(p);
  if (*p++ != '-') return false;
  const std::uint64_t end = hex(p);
  if (address < start || address >= end) return false;
  skip_field(p);  // perms
  while (*p == ' ') ++p;
  offset = hex(p) + (address - start);
  skip_field(p);  // dev
  skip_field(p);  // inode
  while (*p == ' ') ++p;
  std::size_t k = 0;
  while (*p != '\0' && k + 1 < capacity) path[k++] = *p++;
  path[k] = '\0';
  return k > 0;  // an anonymous mapping has no path
}

// The file mapped at `address`, from /proc/self/maps read line by line in a fixed buffer.
bool mapped_file(std::uint64_t address, char* path, std::size_t capacity, std::uint64_t& offset) {
  const int fd = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buffer[8192];
  std::size_t length = 0;
  bool eof = false, found = false;
  while (!found) {
    if (!eof) {
      const ssize_t n = ::read(fd, buffer + length, sizeof buffer - 1 - length);
      if (n <= 0)
        eof = true;
      else
        length += static_cast<std::size_t>(n);
    }
    std::size_t end = 0;
    while (end < length && buffer[end] != '\n') ++end;
    if (end == length && !eof) {
      if (length + 1 >= sizeof buffer) length = 0;  // a line longer than the buffer: skipped
      continue;
    }
    if (length == 0) break;
    buffer[end] = '\0';
    found = parse_maps_line(buffer, address, path, capacity, offset);
    const std::size_t next = end < length ? end + 1 : length;
    for (std::size_t i = next; i < length; ++i) buffer[i - next] = buffer[i];
    length -= next;
  }
  ::close(fd);
  return found;
}

extern "C" void on_termination(int signal) {
  Line line;
  line << g_texts.prefix << "stopped by " << (signal == SIGINT ? "SIGINT" : "SIGTERM")
       << g_texts.hint;
  line.write_to_stderr();
  linger();
  ::raise(signal);  // SA_RESETHAND restored the default action: die of the signal as before
}

extern "C" void on_bus_error(int signal, siginfo_t* info, void*) {
  const auto address = reinterpret_cast<std::uint64_t>(info->si_addr);
  char path[4096];
  std::uint64_t offset = 0;
  Line line;
  line << g_texts.prefix << "bus error (SIGBUS) ";
  if (mapped_file(address, path, sizeof path, offset)) {
    line << "reading " << path << " at offset ";
    line.number(offset, 10)
        << ": the file was truncated or changed while the job had it memory-mapped; restore it "
           "and run again";
  } else {
    line << "at address 0x";
    line.number(address, 16);
  }
  line.write_to_stderr();
  linger();
  ::raise(signal);
}

void copy(char* to, std::size_t capacity, const std::string& from) {
  std::size_t n = 0;
  for (; n + 1 < capacity && n < from.size(); ++n) to[n] = from[n];
  to[n] = '\0';
}

}  // namespace

void install_signal_messages(const std::string& prefix, const std::string& termination_hint) {
  copy(g_texts.prefix, sizeof g_texts.prefix, prefix);
  copy(g_texts.hint, sizeof g_texts.hint, termination_hint);
  struct sigaction action {};
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND;
  action.sa_handler = on_termination;
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);
  action.sa_flags = SA_RESETHAND | SA_SIGINFO;
  action.sa_sigaction = on_bus_error;
  ::sigaction(SIGBUS, &action, nullptr);
}

}  // namespace qshard
