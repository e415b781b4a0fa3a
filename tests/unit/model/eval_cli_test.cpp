// qshard-eval's command line (parse_eval_options).
#include "qshard/eval/eval_cli.hpp"

#include <gtest/gtest.h>

#include "error_text.hpp"

namespace qshard {
namespace {

EvalOptions parse(const std::vector<std::string>& args) {
  const ParsedEvalOptions parsed = parse_eval_options(args);
  EXPECT_TRUE(parsed.options.has_value());
  return parsed.options.value_or(EvalOptions{});
}

TEST(EvalCli, DefaultsAsQuantize) {
  const EvalOptions o = parse({});
  EXPECT_EQ(o.backend, "auto");
  EXPECT_EQ(o.threads, 0);
  EXPECT_FALSE(o.json);
  EXPECT_EQ(parse({"--threads", "2"}).threads, 2);
  EXPECT_EQ(parse({"--seq-len", "8"}).seq_len, 8);
  EXPECT_EQ(parse({"--logits-out", "x.f32"}).logits_out, "x.f32");
}

TEST(EvalCli, JsonIsASwitch) {
  EXPECT_TRUE(parse({"--json"}).json);
  EXPECT_TRUE(parse({"--json=true"}).json);
  EXPECT_FALSE(parse({"--json=false"}).json);
  EXPECT_FALSE(parse({"--json", "false"}).json);
  EXPECT_TRUE(parse({"--allow-extra-tensors"}).allow_extra_tensors);
}

TEST(EvalCli, RefusesStrayWordsAndBadValues) {
  EXPECT_TRUE(test::has(test::error_of([] {
                          parse_eval_options({"--json", "--model", "a", "b"});
                        }),
                        "unexpected argument 'b'"));
  EXPECT_TRUE(test::has(test::error_of([] {
                          parse_eval_options({"--backend", "tpu"});
                        }),
                        "backend: expected cpu, cuda or auto"));
  EXPECT_TRUE(test::has(test::error_of([] {
                          parse_eval_options({"--threads", "-1"});
                        }),
                        "threads"));
}

TEST(EvalCli, HelpNamesTheConventions) {
  const ParsedEvalOptions parsed = parse_eval_options({"--help"});
  EXPECT_FALSE(parsed.options.has_value());
  EXPECT_TRUE(test::has(parsed.help, "- or _")) << parsed.help;
  EXPECT_TRUE(test::has(parsed.help, "--threads")) << parsed.help;
}

}  // namespace
}  // namespace qshard
