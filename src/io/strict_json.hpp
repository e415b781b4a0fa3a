#pragma once
// JSON parsing that refuses what nlohmann accepts silently: duplicate keys in any object.
#include <nlohmann/json.hpp>
#include <string_view>

namespace qshard::io_detail {

// Parses `text`; throws qshard::Error naming `source` for invalid JSON and for a key that appears
// twice in one object (naming the key and, for nested objects, the enclosing top-level key).
// `top_level_noun` names what the top-level keys are ("tensor" for a safetensors header).
nlohmann::json parse_json_strict(std::string_view text, std::string_view source,
                                 std::string_view top_level_noun = "key");

// A short description of a JSON value's type for error messages ("string", "array", ...).
const char* json_type_name(const nlohmann::json& value);

}  // namespace qshard::io_detail
