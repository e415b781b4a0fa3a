#pragma once
// UTF-8 validation: strings that go into JSON (job.json, @job_config) must be valid UTF-8, which
// file names on Linux need not be.
#include <string_view>

namespace qshard {

// True when `text` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
// above U+10FFFF), exactly what a JSON writer accepts.
bool is_valid_utf8(std::string_view text);

}  // namespace qshard
