#pragma once
// results.jsonl: one JSON object per evaluated sweep point, appended by concurrent array tasks.
#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>

namespace qshard {

// Appends `record` as one line with a single write() under an exclusive flock(), so lines of
// concurrent writers (array tasks on several nodes sharing the file) never interleave.
void append_result_line(const std::filesystem::path& results, const nlohmann::json& record);

// Every line of the file; throws naming the file and line when one is not a JSON object.
std::vector<nlohmann::json> read_result_lines(const std::filesystem::path& results);

}  // namespace qshard
