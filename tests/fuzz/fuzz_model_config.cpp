// libFuzzer target: the config.json parser (src/io/model_config.cpp). An accepted config must give
// every linear module's shape and survive to_json -> parse unchanged.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_support.hpp"
#include "qshard/io/model_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, const std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  qshard::fuzz::refused_or_parsed([&] {
    const qshard::ModelConfig config = qshard::parse_model_config_text(text, "fuzz config.json");
    for (const qshard::Linear linear : qshard::kAllLinears) {
      const auto [rows, cols] = qshard::linear_shape(config, linear);
      qshard::fuzz::check(rows > 0 && cols > 0, "linear modules have positive shapes");
    }
    const std::string written = qshard::to_json(config);
    const qshard::ModelConfig reread = qshard::parse_model_config_text(written, "to_json");
    qshard::fuzz::check(qshard::to_json(reread) == written, "to_json round trip");
  });
  return 0;
}
