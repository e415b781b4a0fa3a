#pragma once
// Command-line conventions shared by the apps.
#include <string>
#include <vector>

namespace qshard {

// Option names are spelled with underscores (as the INI keys); "--seq-len" is accepted as
// "--seq_len". Values (after '=' or in their own argument) are left alone.
std::vector<std::string> normalise_option_names(std::vector<std::string> args);

}  // namespace qshard
