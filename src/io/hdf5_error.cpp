// Why an HDF5 call failed, read from the library's error stack: the OS reason of a failed system
// call (HDF5's file drivers record "errno = 28, error message = 'No space left on device'"),
// else the innermost description.
#include <string>

#include "qshard/core/error.hpp"
#include "qshard/io/hdf5.hpp"

namespace qshard::h5 {
namespace {

struct Reasons {
  std::string os;         // strerror text of the first failed system call
  std::string innermost;  // the first description met walking upward
};

herr_t collect_reason(unsigned, const H5E_error2_t* error, void* data) {
  auto& reasons = *static_cast<Reasons*>(data);
  const std::string description = error->desc != nullptr ? error->desc : "";
  if (reasons.innermost.empty()) reasons.innermost = description;
  static constexpr std::string_view kMarker = "error message = '";
  const std::size_t start = description.find(kMarker);
  if (reasons.os.empty() && start != std::string::npos) {
    const std::size_t text = start + kMarker.size();
    const std::size_t end = description.find('\'', text);
    reasons.os = description.substr(text, end == std::string::npos ? end : end - text);
  }
  return 0;
}

}  // namespace

std::string last_error() {
  Reasons reasons;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect_reason, &reasons);
  return reasons.os.empty() ? reasons.innermost : reasons.os;
}

std::string with_reason(const std::string& what) {
  const std::string reason = last_error();
  return reason.empty() ? what : what + ": " + reason;
}

void check(bool ok, const std::string& what) {
  if (!ok) throw Error(with_reason(what));
}

Handle checked(hid_t id, Handle::Closer closer, const std::string& what) {
  check(id >= 0, what);
  return Handle(id, closer);
}

}  // namespace qshard::h5
