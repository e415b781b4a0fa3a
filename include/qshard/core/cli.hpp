#pragma once
// Command-line conventions shared by the apps.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qshard {

// An app's options parsed from its command line, or only its help text when --help was given.
template <class Options>
struct ParsedCommandLine {
  std::optional<Options> options;  // empty when --help was asked for
  std::string help;
};

// Option names are spelled with underscores (as the INI keys); "--seq-len" is accepted as
// "--seq_len". Values (after '=' or in their own argument) are left alone. Arguments are checked
// with check_option_text first.
std::vector<std::string> normalise_option_names(std::vector<std::string> args);

// Throws naming `where` when `text` holds a %word% sequence: Boost.Program_options substitutes
// %canonical_option%, %value% and the like into its error messages in a loop that never ends
// when the substituted text holds the placeholder again (a mistyped INI key was enough).
void check_option_text(std::string_view text, std::string_view where);

}  // namespace qshard
