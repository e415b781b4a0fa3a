// Forward throughput of a model on the CPU (tokens/s), e.g. stories260k. Not a test.
//
//   build/bench/qshard-bench-forward --model ../shared/models/stories260k [--seq_len 256]
//       [--batch 8] [--threads 1] [--repeats 5]
#include <cblas.h>

#include <cstring>
#include <iostream>
#include <random>

#include "bench_util.hpp"
#include "qshard/model/causal_lm.hpp"
#include "qshard/model/synthetic_source.hpp"

int main(int argc, char** argv) {
  std::string model = "../shared/models/stories260k";
  std::int64_t seq = 256, batch = 8;
  int threads = 1, repeats = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    if (key == "--model") model = argv[i + 1];
    if (key == "--seq_len") seq = std::atoll(argv[i + 1]);
    if (key == "--batch") batch = std::atoll(argv[i + 1]);
    if (key == "--threads") threads = std::atoi(argv[i + 1]);
    if (key == "--repeats") repeats = std::atoi(argv[i + 1]);
  }
  openblas_set_num_threads(threads);
  const auto source = qshard::open_model(model, 0);
  const qshard::CausalLm lm(*source);
  std::mt19937 rng(1);
  std::vector<std::int32_t> tokens(static_cast<std::size_t>(seq * batch));
  for (auto& t : tokens)
    t = static_cast<std::int32_t>(rng() % static_cast<unsigned>(lm.config().vocab_size));
  const double s = qshard::bench::median_seconds(repeats, [&] { lm.logits(tokens, seq); });
  std::cout << "qshard-bench-forward: " << model << " on " << qshard::bench::cpu_model()
            << ", OpenBLAS threads " << threads << ": " << batch << " x " << seq << " tokens in "
            << s << " s (median of " << repeats << ") = " << static_cast<double>(seq * batch) / s
            << " tokens/s\n";
  return 0;
}
