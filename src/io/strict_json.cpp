#include "strict_json.hpp"

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "qshard/core/error.hpp"

namespace qshard::io_detail {
namespace {

struct Duplicate {
  std::string key;
  std::string top_level_key;  // empty for a duplicate in the top-level object
};

// Tracks the keys of every open object while the parser runs.
class DuplicateFinder {
 public:
  bool operator()(const int depth, const nlohmann::json::parse_event_t event,
                  const nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    switch (event) {
      case Event::object_start:
        open_keys_.emplace_back();
        break;
      case Event::object_end:
        if (!open_keys_.empty()) open_keys_.pop_back();
        break;
      case Event::key: {
        const std::string key = parsed.get<std::string>();
        if (depth == 1) top_level_key_ = key;
        if (!open_keys_.empty() && !open_keys_.back().insert(key).second && !duplicate_) {
          duplicate_ = Duplicate{key, depth == 1 ? std::string() : top_level_key_};
        }
        break;
      }
      default:
        break;
    }
    return true;
  }
  const std::optional<Duplicate>& duplicate() const { return duplicate_; }

 private:
  std::vector<std::set<std::string>> open_keys_;
  std::string top_level_key_;
  std::optional<Duplicate> duplicate_;
};

}  // namespace

nlohmann::json parse_json_strict(const std::string_view text, const std::string_view source,
                                 const std::string_view top_level_noun) {
  DuplicateFinder finder;
  nlohmann::json parsed;
  try {
    // The callback is copied by the parser: route it through a reference.
    parsed = nlohmann::json::parse(
        text.begin(), text.end(),
        [&finder](int depth, nlohmann::json::parse_event_t event, nlohmann::json& value) {
          return finder(depth, event, value);
        });
  } catch (const nlohmann::json::exception& e) {
    throw Error(str(source, ": invalid JSON: ", e.what()));
  }
  if (const auto& dup = finder.duplicate()) {
    if (dup->top_level_key.empty()) {
      throw Error(str(source, ": duplicate ", top_level_noun, " '", dup->key, "'"));
    }
    throw Error(str(source, ": duplicate key '", dup->key, "' inside '", dup->top_level_key, "'"));
  }
  return parsed;
}

const char* json_type_name(const nlohmann::json& value) { return value.type_name(); }

}  // namespace qshard::io_detail
