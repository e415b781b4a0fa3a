// qshard-export: a qshard checkpoint as a Hugging Face directory in the GPTQ safetensors format
// (or dense, dequantized), for serving engines and the reference GPTQ tools.
#include <iostream>

#include "qshard/export/export_cli.hpp"
#include "qshard/io/hdf5_app.hpp"

int main(int argc, char** argv) {
  return qshard::run_app(
      qshard::hdf5_app("qshard-export"),
      [&] {
        const qshard::ParsedExportOptions parsed =
            qshard::parse_export_options({argv + 1, argv + argc});
        if (!parsed.options) {
          std::cout << parsed.help;
          return 0;
        }
        qshard::run_export(*parsed.options, std::cout);
        return 0;
      },
      std::cerr);
}
