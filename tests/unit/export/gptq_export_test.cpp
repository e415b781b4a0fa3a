// qshard-export's decisions: modules clients cannot pack or the checkpoint keeps in floating
// point, the v1 zero-point hazard, groups, shards, the dense format, the output directory.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "export_test_support.hpp"
#include "qshard/export/export_job.hpp"
#include "qshard/export/gptq_module.hpp"
#include "qshard/export/gptq_quant_config.hpp"
#include "qshard/export/shard_writer.hpp"
#include "qshard/io/inspect.hpp"
#include "qshard/io/safetensors.hpp"
#include "qshard/model/checkpoint_source.hpp"
#include "qshard/model/gptq_source.hpp"

namespace qshard::test {
namespace {

ExportOptions options(const fs::path& checkpoint, const fs::path& out) {
  ExportOptions o;
  o.checkpoint = checkpoint.string();
  o.out = out.string();
  return o;
}

std::string run(const ExportOptions& o) {
  std::ostringstream log;
  run_export(o, log);
  return log.str();
}

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

void expect_same_tensors(const WeightSource& expected, const WeightSource& actual) {
  for (const std::string& name : expected_tensor_names(expected.config())) {
    ASSERT_TRUE(actual.contains(name)) << name;
    EXPECT_TRUE(expected.load(name) == actual.load(name)) << name << " differs";
  }
}

// The module names GPTQModel's "-:" rules exclude (re.match: anchored at the start).
std::set<std::string> excluded_by_dynamic(const nlohmann::json& config, std::int64_t layers) {
  std::set<std::string> out;
  for (const auto& [key, body] : config.at("dynamic").items()) {
    EXPECT_TRUE(key.starts_with("-:")) << key;
    const std::regex pattern(key.substr(2));
    for (std::int64_t l = 0; l < layers; ++l)
      for (const Linear linear : kAllLinears) {
        const std::string name =
            str("model.layers.", l, ".", linear_parent(linear), ".", linear_name(linear));
        if (std::regex_search(name, pattern, std::regex_constants::match_continuous))
          out.insert(name);
      }
  }
  return out;
}

// The module names optimum replaces by quantized layers (name ends with an entry).
std::set<std::string> quantized_by_optimum(const nlohmann::json& config, std::int64_t layers) {
  std::set<std::string> out;
  for (std::int64_t l = 0; l < layers; ++l)
    for (const Linear linear : kAllLinears) {
      const std::string name =
          str("model.layers.", l, ".", linear_parent(linear), ".", linear_name(linear));
      for (const auto& group : config.at("modules_in_block_to_quantize"))
        for (const auto& entry : group)
          if (name.ends_with(entry.get<std::string>())) out.insert(name);
    }
  return out;
}

TEST(GptqExport, ModulesClientsCannotPackAreDequantizedAndExcludedForEveryClient) {
  TempDir dir;
  CheckpointSpec spec;
  spec.intermediate = 84;  // 84 4-bit codes fill 10.5 words
  write_random_checkpoint(dir / "q.h5", spec);
  const std::string log = run(options(dir / "q.h5", dir / "out"));
  for (const char* kind : {"mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"})
    EXPECT_NE(log.find(str(kind, " of layers 0-1: written in floating point")), std::string::npos)
        << log;
  const SafetensorsModel model(dir / "out");
  std::set<std::string> floats, packed;
  for (std::int64_t l = 0; l < 2; ++l)
    for (const Linear linear : kAllLinears) {
      const std::string name =
          str("model.layers.", l, ".", linear_parent(linear), ".", linear_name(linear));
      const bool mlp = linear_parent(linear) == "mlp";
      EXPECT_EQ(model.contains(name + ".weight"), mlp) << name;
      EXPECT_EQ(model.contains(name + ".qweight"), !mlp) << name;
      (mlp ? floats : packed).insert(name);
      if (mlp) {
        EXPECT_EQ(model.view(name + ".weight").dtype, DType::F32);
      }
    }
  const nlohmann::json config = read_json(dir / "out/config.json").at("quantization_config");
  EXPECT_EQ(config, read_json(dir / "out/quantize_config.json"));
  EXPECT_EQ(excluded_by_dynamic(config, 2), floats);
  EXPECT_EQ(quantized_by_optimum(config, 2), packed);
  // qshard's own reader honours the config and gives back the checkpoint's model exactly.
  expect_same_tensors(*open_checkpoint_model(dir / "q.h5"), *open_hf_model(dir / "out"));
}

TEST(GptqExport, ModulesTheCheckpointKeepsInFloatAreWrittenAsStoredAndExcluded) {
  TempDir dir;
  CheckpointSpec spec;
  spec.float_modules = {Linear::O, Linear::Down};
  write_random_checkpoint(dir / "q.h5", spec);
  const std::string log = run(options(dir / "q.h5", dir / "out"));
  EXPECT_NE(log.find("method none"), std::string::npos) << log;
  const nlohmann::json config = read_json(dir / "out/config.json").at("quantization_config");
  EXPECT_EQ(
      excluded_by_dynamic(config, 2),
      (std::set<std::string>{"model.layers.0.self_attn.o_proj", "model.layers.0.mlp.down_proj",
                             "model.layers.1.self_attn.o_proj", "model.layers.1.mlp.down_proj"}));
  EXPECT_EQ(quantized_by_optimum(config, 2).size(), 10u);
  expect_same_tensors(*open_checkpoint_model(dir / "q.h5"), *open_hf_model(dir / "out"));
}

TEST(GptqExport, ExcludedModulesOfSomeLayersOnlyAreNamedPerLayer) {
  GptqExportSettings s;
  s.layers = 12;
  ModelConfig twelve;
  twelve.num_hidden_layers = 12;
  s.groups = sequential_groups(twelve);
  s.excluded = {{1, "mlp.up_proj", "x"}, {11, "mlp.up_proj", "x"}};
  const nlohmann::json config = gptq_quantization_config(s);
  EXPECT_EQ(excluded_by_dynamic(config, 12),
            (std::set<std::string>{"model.layers.1.mlp.up_proj", "model.layers.11.mlp.up_proj"}));
  const std::set<std::string> quantized = quantized_by_optimum(config, 12);
  EXPECT_EQ(quantized.size(), 12u * 7u - 2u);
  EXPECT_FALSE(quantized.contains("model.layers.1.mlp.up_proj"));
  EXPECT_TRUE(quantized.contains("model.layers.10.mlp.up_proj"));
}

TEST(GptqExport, V1RefusesAZeroOfZeroAndLeavesNoOutputWhileV2StoresIt) {
  TempDir dir;
  CheckpointSpec spec;
  spec.bits = 2;
  spec.zero_can_be_0 = true;
  write_random_checkpoint(dir / "q.h5", spec);
  try {
    run(options(dir / "q.h5", dir / "out"));
    ADD_FAILURE() << "a zero of 0 was exported as v1";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("model.layers.0.self_attn.q_proj"), std::string::npos) << message;
    EXPECT_NE(message.find("has zero 0"), std::string::npos) << message;
    EXPECT_NE(message.find("--checkpoint-format gptq_v2"), std::string::npos) << message;
  }
  EXPECT_FALSE(fs::exists(dir / "out"));
  EXPECT_FALSE(fs::exists(dir / "out.tmp"));
  ExportOptions v2 = options(dir / "q.h5", dir / "out");
  v2.zero_format = GptqZeroFormat::V2;
  run(v2);
  EXPECT_EQ(read_json(dir / "out/config.json")["quantization_config"]["checkpoint_format"],
            "gptq_v2");
  expect_same_tensors(*open_checkpoint_model(dir / "q.h5"), *open_hf_model(dir / "out"));
}

TEST(GptqExport, OneGroupPerRowAndWholeGroupsArePackedPartialGroupsAreNot) {
  for (const std::int64_t group : {std::int64_t{-1}, std::int64_t{48}}) {
    TempDir dir;
    CheckpointSpec spec;
    spec.group_size = group;
    spec.act_order = true;
    write_random_checkpoint(dir / "q.h5", spec);
    run(options(dir / "q.h5", dir / "out"));
    const nlohmann::json config = read_json(dir / "out/config.json")["quantization_config"];
    EXPECT_EQ(config["group_size"], group);
    const SafetensorsModel model(dir / "out");
    // down_proj has 96 inputs: one group, or two whole groups of 48.
    EXPECT_EQ(model.view("model.layers.0.mlp.down_proj.scales").shape,
              (Shape{group < 0 ? 1 : 2, 64}));
    // The others have 64 inputs: one group, or 48 + 16, which vLLM cannot hold.
    EXPECT_EQ(model.contains("model.layers.0.self_attn.q_proj.scales"), group < 0);
    EXPECT_EQ(model.contains("model.layers.0.self_attn.q_proj.weight"), group > 0);
    EXPECT_EQ(excluded_by_dynamic(config, 2).size(), group < 0 ? 0u : 12u);
    expect_same_tensors(*open_checkpoint_model(dir / "q.h5"), *open_hf_model(dir / "out"));
  }
}

TEST(GptqExport, ShardsHoldAtMostTheLimitAndTheIndexListsEveryTensor) {
  TempDir dir;
  write_random_checkpoint(dir / "q.h5", CheckpointSpec{});
  ExportOptions o = options(dir / "q.h5", dir / "out");
  o.max_shard_bytes = 20000;
  run(o);
  EXPECT_FALSE(fs::exists(dir / "out/model.safetensors"));
  const nlohmann::json index = read_json(dir / "out/model.safetensors.index.json");
  std::map<std::string, std::uint64_t> bytes_of_file;
  std::uint64_t total = 0;
  std::set<std::string> files;
  for (const auto& [name, file] : index["weight_map"].items()) {
    const SafetensorsFile shard(dir / "out" / file.get<std::string>());
    const std::uint64_t bytes = shard.view(name).bytes.size();
    bytes_of_file[file] += bytes;
    total += bytes;
    files.insert(file);
  }
  EXPECT_EQ(index["metadata"]["total_size"], total);
  ASSERT_GT(files.size(), 2u);
  std::size_t n = 1;
  for (const std::string& file : files) {  // model-0000N-of-0000M.safetensors, N = 1..M
    char expected[64];
    std::snprintf(expected, sizeof expected, "model-%05zu-of-%05zu.safetensors", n++, files.size());
    EXPECT_EQ(file, expected);
    const SafetensorsFile shard(dir / "out" / file);
    EXPECT_TRUE(bytes_of_file[file] <= 20000 || shard.names().size() == 1) << file;
  }
  for (const auto& item : fs::directory_iterator(dir / "out"))
    EXPECT_FALSE(item.path().string().ends_with(".part")) << item.path();
  expect_same_tensors(*open_checkpoint_model(dir / "q.h5"), *open_hf_model(dir / "out"));
}

TEST(GptqExport, FloatFormatIsADenseModelOfTheDequantizedWeights) {
  TempDir dir;
  CheckpointSpec spec;
  spec.dtype = DType::BF16;
  spec.float_modules = {Linear::V};
  write_random_checkpoint(dir / "q.h5", spec);
  ExportOptions o = options(dir / "q.h5", dir / "out");
  o.format = ExportFormat::Float;
  run(o);
  const nlohmann::json config = read_json(dir / "out/config.json");
  EXPECT_FALSE(config.contains("quantization_config"));
  EXPECT_EQ(config["torch_dtype"], "float32");
  EXPECT_FALSE(fs::exists(dir / "out/quantize_config.json"));
  EXPECT_FALSE(read_gptq_config(dir / "out").has_value());
  const SafetensorsModel model(dir / "out");
  EXPECT_EQ(model.view("model.layers.0.self_attn.q_proj.weight").dtype, DType::F32);
  EXPECT_EQ(model.view("model.layers.0.self_attn.v_proj.weight").dtype, DType::BF16);  // stored
  EXPECT_EQ(model.view("model.embed_tokens.weight").dtype, DType::BF16);
  expect_same_tensors(*open_checkpoint_model(dir / "q.h5"), *open_hf_model(dir / "out"));
}

TEST(GptqExport, Bf16ModelsKeepTheirFloatTensorsInBf16) {
  TempDir dir;
  CheckpointSpec spec;
  spec.dtype = DType::BF16;
  spec.intermediate = 84;
  write_random_checkpoint(dir / "q.h5", spec);
  run(options(dir / "q.h5", dir / "out"));
  const SafetensorsModel model(dir / "out");
  EXPECT_EQ(model.view("model.embed_tokens.weight").dtype, DType::BF16);
  EXPECT_EQ(model.view("model.norm.weight").dtype, DType::BF16);
  EXPECT_EQ(model.view("model.layers.1.input_layernorm.weight").dtype, DType::BF16);
  EXPECT_EQ(model.view("model.layers.0.self_attn.q_proj.scales").dtype, DType::F16);
  // Dequantized scale * (q - z) products rarely fit bf16: written in fp32 to stay exact.
  EXPECT_EQ(model.view("model.layers.0.mlp.up_proj.weight").dtype, DType::F32);
  expect_same_tensors(*open_checkpoint_model(dir / "q.h5"), *open_hf_model(dir / "out"));
}

TEST(GptqExport, SourceModelConfigAndTokenizerFilesAreCarriedOver) {
  TempDir dir;
  const CheckpointSpec spec;
  write_random_checkpoint(dir / "q.h5", spec);
  fs::create_directories(dir / "src");
  nlohmann::json source = nlohmann::json::parse(to_json(spec_config(spec)));
  source["bos_token_id"] = 1;
  source["eos_token_id"] = 2;
  std::ofstream(dir / "src/config.json") << source.dump(2);
  std::ofstream(dir / "src/tokenizer.json") << R"({"model": {}})";
  std::ofstream(dir / "src/generation_config.json") << R"({"bos_token_id": 1})";
  ExportOptions o = options(dir / "q.h5", dir / "out");
  o.model = (dir / "src").string();
  const std::string log = run(o);
  const nlohmann::json config = read_json(dir / "out/config.json");
  EXPECT_EQ(config["eos_token_id"], 2);
  EXPECT_EQ(config["quantization_config"]["quant_method"], "gptq");
  EXPECT_TRUE(fs::exists(dir / "out/tokenizer.json"));
  EXPECT_TRUE(fs::exists(dir / "out/generation_config.json"));
  EXPECT_FALSE(fs::exists(dir / "out/tokenizer.model"));  // absent at the source
  EXPECT_NE(log.find("copied tokenizer.json"), std::string::npos);

  source["hidden_size"] = 128;  // another model
  std::ofstream(dir / "src/config.json") << source.dump(2);
  o.out = (dir / "other").string();
  expect_error_with([&] { run(o); }, {"describes another model", "src"});
  EXPECT_FALSE(fs::exists(dir / "other"));
}

TEST(GptqExport, OutputDirectoryIsRefusedReplacedOrLeftAlone) {
  TempDir dir;
  write_random_checkpoint(dir / "q.h5", CheckpointSpec{});
  fs::create_directories(dir / "out");
  std::ofstream(dir / "out/keep.txt") << "mine";
  expect_error_with([&] { run(options(dir / "q.h5", dir / "out")); }, {"not empty", "--force"});
  EXPECT_TRUE(fs::exists(dir / "out/keep.txt"));
  EXPECT_FALSE(fs::exists(dir / "out.tmp"));

  ExportOptions forced = options(dir / "q.h5", dir / "out");
  forced.force = true;
  run(forced);
  EXPECT_FALSE(fs::exists(dir / "out/keep.txt"));
  EXPECT_TRUE(fs::exists(dir / "out/model.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "out.old"));

  fs::create_directories(dir / "empty");  // an empty directory is filled
  run(options(dir / "q.h5", dir / "empty"));
  EXPECT_TRUE(fs::exists(dir / "empty/config.json"));

  expect_error_with([&] { run(options(dir / "q.h5", "/proc/qshard-no-such/out")); },
                    {"cannot create output directory", "/proc/qshard-no-such/out.tmp"});
  expect_error_with([&] { run(options(dir / "missing.h5", dir / "new")); }, {"missing.h5"});
  EXPECT_FALSE(fs::exists(dir / "new"));
  EXPECT_FALSE(fs::exists(dir / "new.tmp"));
}

TEST(GptqExport, EverySettingTheConfigStatesMustBeRecordedInTheCheckpoint) {
  TempDir dir;
  CheckpointSpec spec;
  spec.drop_job_keys = {"sym"};
  write_random_checkpoint(dir / "q.h5", spec);
  expect_error_with([&] { run(options(dir / "q.h5", dir / "out")); },
                    {"q.h5", "@job_config: missing 'sym'"});
  EXPECT_FALSE(fs::exists(dir / "out"));
}

TEST(GptqExport, ShardSizesAreParsedAsHuggingFaceSpellsThem) {
  EXPECT_EQ(parse_byte_size("2GB"), 2000000000u);
  EXPECT_EQ(parse_byte_size("500MB"), 500000000u);
  EXPECT_EQ(parse_byte_size("64kb"), 64000u);
  EXPECT_EQ(parse_byte_size("2GiB"), 2u << 30);
  EXPECT_EQ(parse_byte_size("512MiB"), 512u << 20);
  EXPECT_EQ(parse_byte_size("1024"), 1024u);
  for (const char* bad : {"", "GB", "2TB", "-1GB", "0", "1.5GB"})
    expect_error_with([&] { parse_byte_size(bad); }, {"invalid size"});
}

}  // namespace
}  // namespace qshard::test

namespace qshard::test {
namespace {

TEST(GptqExport, ModulesArePackedWhenTheirDimensionsFillWholeWordsAndGroups) {
  // 32 / gcd(32, bits) must divide in and out: 8 at 4 bits, 16 at 2, 32 at 3, 4 at 8; the group
  // size must divide in.
  EXPECT_FALSE(gptq_unpackable_reason(64, 172, 8, 32).has_value());  // stories260k's gate/up
  EXPECT_TRUE(gptq_unpackable_reason(172, 64, 8, 32).has_value());   // its down_proj: 5.375 groups
  EXPECT_FALSE(gptq_unpackable_reason(172, 64, 8, -1).has_value());
  EXPECT_TRUE(gptq_unpackable_reason(64, 172, 4, 32).has_value());
  EXPECT_TRUE(gptq_unpackable_reason(172, 64, 4, -1).has_value());
  EXPECT_FALSE(gptq_unpackable_reason(40, 8, 4, -1).has_value());
  EXPECT_TRUE(gptq_unpackable_reason(40, 8, 2, -1).has_value());
  EXPECT_FALSE(gptq_unpackable_reason(48, 16, 2, 16).has_value());
  EXPECT_TRUE(gptq_unpackable_reason(48, 32, 3, -1).has_value());
  EXPECT_FALSE(gptq_unpackable_reason(96, 32, 3, 48).has_value());
  EXPECT_TRUE(gptq_unpackable_reason(96, 32, 3, 64).has_value());
  const auto words = gptq_unpackable_reason(64, 172, 4, 32);
  EXPECT_NE(words->find("172 output features"), std::string::npos) << *words;
  const auto groups = gptq_unpackable_reason(96, 32, 3, 64);
  EXPECT_NE(groups->find("group size 64"), std::string::npos) << *groups;

  TempDir dir;
  CheckpointSpec spec;
  spec.bits = 8;
  spec.intermediate = 84;  // 84 8-bit codes fill 21 words, but 84 inputs are 2.625 groups of 32
  write_random_checkpoint(dir / "q.h5", spec);
  run(options(dir / "q.h5", dir / "out"));
  const SafetensorsModel model(dir / "out");
  EXPECT_EQ(model.view("model.layers.0.mlp.up_proj.qweight").shape, (Shape{16, 84}));
  EXPECT_EQ(model.view("model.layers.0.mlp.up_proj.qzeros").shape, (Shape{2, 21}));
  EXPECT_TRUE(model.contains("model.layers.0.mlp.down_proj.weight"));
  const nlohmann::json config = read_json(dir / "out/config.json")["quantization_config"];
  EXPECT_EQ(
      excluded_by_dynamic(config, 2),
      (std::set<std::string>{"model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj"}));
  expect_same_tensors(*open_checkpoint_model(dir / "q.h5"), *open_hf_model(dir / "out"));
}

}  // namespace
}  // namespace qshard::test
