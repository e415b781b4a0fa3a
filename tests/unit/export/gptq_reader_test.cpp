// Reading GPTQ directories: broken tensors and unsupported settings fail naming the file and the
// tensor or field; directories laid out as other tools write them are read.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "export_test_support.hpp"
#include "qshard/export/export_job.hpp"
#include "qshard/export/gptq_module.hpp"
#include "qshard/io/safetensors.hpp"
#include "qshard/model/causal_lm.hpp"
#include "qshard/model/checkpoint_source.hpp"
#include "qshard/model/gptq_source.hpp"

namespace qshard::test {
namespace {

// A GPTQ directory exported from a random checkpoint.
void exported(const TempDir& dir, const CheckpointSpec& spec = {}) {
  write_random_checkpoint(dir / "q.h5", spec);
  ExportOptions o;
  o.checkpoint = (dir / "q.h5").string();
  o.out = (dir / "out").string();
  std::ostringstream log;
  run_export(o, log);
}

// Rewrites `file` after `edit` changed its tensors (name -> tensor, in a sorted map).
template <typename Edit>
void rewrite(const fs::path& file, Edit&& edit) {
  std::map<std::string, Tensor> tensors;
  {
    const SafetensorsFile in(file);
    for (const std::string& name : in.names()) tensors[name] = Tensor::copy_of(in.view(name));
  }
  edit(tensors);
  std::vector<NamedTensor> named;
  for (const auto& [name, t] : tensors) named.push_back({name, &t});
  write_safetensors(file, named, {{"format", "pt"}});
}

void write_config(const fs::path& dir, const nlohmann::json& quantization) {
  const std::string text = [&] {
    std::ifstream in(dir / "config.json");
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }();
  nlohmann::json config = nlohmann::json::parse(text);
  config["quantization_config"] = quantization;
  std::ofstream(dir / "config.json") << config.dump(2);
}

nlohmann::json quantization_config(const fs::path& dir) {
  std::ifstream in(dir / "config.json");
  return nlohmann::json::parse(in)["quantization_config"];
}

const std::string kQ = "model.layers.1.self_attn.q_proj";

TEST(GptqReader, MissingScalesNamesTheTensor) {
  TempDir dir;
  exported(dir);
  rewrite(dir / "out/model.safetensors", [](auto& t) { t.erase(kQ + ".scales"); });
  const auto model = open_hf_model(dir / "out");
  expect_error_with([&] { model->load(kQ + ".weight"); },
                    {"tensor 'model.layers.1.self_attn.q_proj.scales' is missing", "out"});
  expect_error_with([&] { CausalLm lm(*model); }, {"q_proj.scales"});
}

TEST(GptqReader, WrongQweightShapeNamesTheFileTheTensorAndTheExpectedShape) {
  TempDir dir;
  exported(dir);
  rewrite(dir / "out/model.safetensors", [](auto& t) {
    Tensor& q = t.at(kQ + ".qweight");
    Tensor cut(DType::I32, {q.shape()[0] - 1, q.shape()[1]});
    std::copy_n(q.bytes().begin(), cut.bytes().size(), cut.bytes().begin());
    q = std::move(cut);
  });
  const auto model = open_hf_model(dir / "out");
  expect_error_with([&] { model->load(kQ + ".weight"); },
                    {"model.safetensors", "'model.layers.1.self_attn.q_proj.qweight'",
                     "has shape [7, 64]", "expected [8, 64]"});
}

TEST(GptqReader, WrongDtypesAndGroupIndicesAreRefused) {
  TempDir dir;
  exported(dir);
  rewrite(dir / "out/model.safetensors", [](auto& t) {
    Tensor& z = t.at(kQ + ".qzeros");
    z = Tensor::from_f32(z.to_f32(), z.shape(), DType::F32);
    Tensor& g = t.at("model.layers.0.self_attn.k_proj.g_idx");
    g.as<std::int32_t>()[3] = 7;
  });
  const auto model = open_hf_model(dir / "out");
  expect_error_with([&] { model->load(kQ + ".weight"); }, {"q_proj.qzeros' is F32, expected I32"});
  expect_error_with([&] { model->load("model.layers.0.self_attn.k_proj.weight"); },
                    {"k_proj.g_idx", "input feature 3 to group 7 of 2"});
}

TEST(GptqReader, ConfigAndTensorsMustAgree) {
  TempDir dir;
  exported(dir);
  nlohmann::json q = quantization_config(dir / "out");
  q["dynamic"] = {{"-:model\\.layers\\.1\\.self_attn\\.q_proj$", nlohmann::json::object()}};
  write_config(dir / "out", q);
  expect_error_with([&] { open_hf_model(dir / "out")->load(kQ + ".weight"); },
                    {"q_proj.qweight' is packed but", "keeps the module in floating point"});
  q["dynamic"] = nullptr;
  write_config(dir / "out", q);
  rewrite(dir / "out/model.safetensors", [](auto& t) {
    for (const char* part : {".qweight", ".qzeros", ".scales", ".g_idx"}) t.erase(kQ + part);
  });
  expect_error_with([&] { open_hf_model(dir / "out")->load(kQ + ".weight"); },
                    {"quantizes module 'model.layers.1.self_attn.q_proj'", "no tensor"});
}

TEST(GptqReader, UnsupportedSettingsAreRefusedNamingTheField) {
  TempDir dir;
  exported(dir);
  const nlohmann::json good = quantization_config(dir / "out");
  const auto refused = [&](const char* key, const nlohmann::json& value,
                           std::initializer_list<std::string_view> parts) {
    nlohmann::json q = good;
    q[key] = value;
    write_config(dir / "out", q);
    expect_error_with([&] { open_hf_model(dir / "out"); }, parts);
  };
  refused("bits", 5, {"config.json", "unsupported bits 5"});
  refused("checkpoint_format", "marlin", {"unsupported checkpoint_format 'marlin'"});
  refused("pack_dtype", "int64", {"unsupported pack_dtype 'int64'"});
  refused("group_size", 0, {"group_size must be -1 or positive"});
  refused("quant_method", "awq", {"quant_method 'awq' is not supported"});
  refused("is_marlin_format", true, {"is_marlin_format"});
  refused("dynamic", {{"-:model\\.layers\\.(", nlohmann::json::object()}},
          {"is not a regular expression"});
}

// A directory as GPTQModel / AutoGPTQ write it, built by hand: fp16 floats, a quantize_config.json
// instead of quantization_config, no g_idx, "format" instead of checkpoint_format, meta fields, an
// lm_head in floating point, a "+:" rule giving one module other bits, and partial last groups
// (64 inputs in groups of 48).
TEST(GptqReader, ThirdPartyLayoutsAreRead) {
  TempDir dir;
  CheckpointSpec spec;
  spec.dtype = DType::F16;
  spec.bias = false;
  spec.group_size = 48;
  write_random_checkpoint(dir / "q.h5", spec);
  const Checkpoint ckpt(dir / "q.h5");
  const ModelConfig& c = ckpt.model_config();
  fs::create_directories(dir / "tp");
  std::ofstream(dir / "tp/config.json") << to_json(c);  // no quantization_config
  std::ofstream(dir / "tp/quantize_config.json") << R"({
    "bits": 4, "group_size": 48, "desc_act": false, "sym": false, "lm_head": false,
    "format": "gptq", "pack_dtype": "int32", "quant_method": "gptq",
    "dynamic": {"+:model\\.layers\\.1\\.mlp\\.down_proj": {"bits": 8}},
    "meta": {"quantizer": ["gptqmodel:4.0.0"], "uri": "https://github.com/modelcloud/gptqmodel"}
  })";
  std::map<std::string, Tensor> tensors;
  std::map<std::string, MatrixF> expected;
  const auto put_float = [&](const std::string& name, const MatrixF& m, Shape shape) {
    tensors[name] = Tensor::from_f32(m.values(), std::move(shape), DType::F16);
    expected[name] = m;
  };
  put_float(std::string(kEmbedName), ckpt.model_tensor(std::string(kEmbedName)),
            {c.vocab_size, c.hidden_size});
  put_float(std::string(kFinalNormName), ckpt.model_tensor(std::string(kFinalNormName)),
            {c.hidden_size});
  put_float(std::string(kLmHeadName), ckpt.model_tensor(std::string(kLmHeadName)),
            {c.vocab_size, c.hidden_size});
  std::mt19937_64 rng(5);
  for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const LayerRecord layer = ckpt.layer(l);
    put_float(input_norm_name(l), layer.input_norm, {c.hidden_size});
    put_float(post_attention_norm_name(l), layer.post_norm, {c.hidden_size});
    for (const Linear linear : kAllLinears) {
      const auto [rows, cols] = linear_shape(c, linear);
      CheckpointSpec s = spec;
      s.bits = l == 1 && linear == Linear::Down ? 8 : 4;
      const QuantizedWeight w = random_quantized(rng, rows, cols, s);
      const std::string prefix =
          str("model.layers.", l, ".", linear_parent(linear), ".", linear_name(linear));
      GptqModuleTensors t = pack_gptq_module(w, GptqZeroFormat::V1, prefix);
      tensors[prefix + ".qweight"] = std::move(t.qweight);
      tensors[prefix + ".qzeros"] = std::move(t.qzeros);
      tensors[prefix + ".scales"] = std::move(t.scales);  // no g_idx: desc_act false
      expected[prefix + ".weight"] = w.dequantize();
    }
  }
  std::vector<NamedTensor> named;
  for (const auto& [name, t] : tensors) named.push_back({name, &t});
  write_safetensors(dir / "tp/model.safetensors", named);
  const auto model = open_hf_model(dir / "tp");
  for (const auto& [name, m] : expected) EXPECT_TRUE(model->load(name) == m) << name;
  EXPECT_NO_THROW(CausalLm lm(*model));
}

TEST(GptqReader, AV1ZeroFieldOfAllOnesReadsAsTwoToTheBits) {
  // v1 stores zero - 1; the all-ones field (a wrapped zero of 0, which qshard never writes) is
  // read as AutoGPTQ's kernels read it: field + 1 = 2^bits, without wrapping.
  TempDir dir;
  exported(dir);
  const Checkpoint ckpt(dir / "q.h5");
  const QuantizedWeight original = ckpt.layer(1).module(Linear::Q).weight;
  rewrite(dir / "out/model.safetensors", [](auto& t) {
    t.at(kQ + ".qzeros").template as<std::int32_t>()[0] |= 0xF;  // output 0 of group 0
  });
  const GptqConfig config = *read_gptq_config(dir / "out");
  const SafetensorsModel model(dir / "out");
  const QuantizedWeight w = read_gptq_module(model, config, *config.module(kQ), kQ, 64, 64);
  EXPECT_EQ(w.zeros(0, 0), 16);
  EXPECT_EQ(w.zeros(1, 0), original.zeros(1, 0));

  // Loading the module through the model says so, naming the file, the tensor and the count;
  // the unchanged modules say nothing.
  const auto hf = open_hf_model(dir / "out");
  testing::internal::CaptureStderr();
  const MatrixF q = hf->load(kQ + ".weight");
  const MatrixF k = hf->load("model.layers.1.self_attn.k_proj.weight");
  const std::string warning = testing::internal::GetCapturedStderr();
  EXPECT_NE(warning.find("model.safetensors: tensor '" + kQ +
                         ".qzeros' holds 1 v1 zero field(s) of all ones"),
            std::string::npos)
      << warning;
  EXPECT_NE(warning.find("gptq_zeros_v1_to_v2.py"), std::string::npos) << warning;
  EXPECT_EQ(warning.find("k_proj"), std::string::npos) << warning;
  // The wrapped group's weight 0 is scale * (code - 16), as read_gptq_module returned it.
  EXPECT_FLOAT_EQ(q(0, 0), w.scales(0, 0) * static_cast<float>(w.codes(0, 0) - 16));
  (void)k;
}

}  // namespace
}  // namespace qshard::test
