#pragma once
// The command line of qshard-export: every ExportOptions field as an option, with its help text.
#include <string>
#include <vector>

#include "qshard/core/cli.hpp"
#include "qshard/export/export_job.hpp"

namespace qshard {

using ParsedExportOptions = ParsedCommandLine<ExportOptions>;

// `args` without argv[0]; unknown options, stray words and bad values throw qshard::Error.
ParsedExportOptions parse_export_options(const std::vector<std::string>& args);

}  // namespace qshard
