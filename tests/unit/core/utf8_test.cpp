// UTF-8 validation of what qshard records as JSON (job options found by the job_options fuzzer).
#include <gtest/gtest.h>

#include <string>

#include "qshard/core/utf8.hpp"

namespace qshard {
namespace {

TEST(Utf8, AcceptsWellFormedText) {
  const std::string texts[] = {"",
                               "plain/ascii.h5",
                               "caf\xc3\xa9",
                               "\xe2\x82\xac",
                               "\xed\x9f\xbf",
                               "\xee\x80\x80",
                               "\xf0\x90\x80\x80",
                               "\xf4\x8f\xbf\xbf",
                               std::string("nul\0inside", 10)};
  for (const std::string& text : texts) EXPECT_TRUE(is_valid_utf8(text)) << text;
}

TEST(Utf8, RefusesMalformedText) {
  const std::string texts[] = {
      "caf\xe9",           // Latin-1
      "\x80",              // lone continuation byte
      "\xc0\xaf",          // overlong '/'
      "\xc1\xbf",          // overlong
      "\xe0\x80\xaf",      // overlong
      "\xed\xa0\x80",      // surrogate U+D800
      "\xf0\x80\x80\xaf",  // overlong
      "\xf4\x90\x80\x80",  // above U+10FFFF
      "\xf5\x80\x80\x80",  // invalid lead
      "\xe2\x82",          // truncated
      "\xe2\x28\xa1",      // bad continuation
  };
  for (const std::string& text : texts) EXPECT_FALSE(is_valid_utf8(text)) << text;
}

}  // namespace
}  // namespace qshard
