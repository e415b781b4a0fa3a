// SafetensorsFile: one memory-mapped, fully validated .safetensors file.
#include <utility>

#include "mapped_file.hpp"
#include "qshard/core/error.hpp"
#include "qshard/io/safetensors.hpp"
#include "safetensors_header.hpp"

namespace qshard {

struct SafetensorsFile::Impl {
  explicit Impl(const std::filesystem::path& file)
      : path(file),
        mapping(file),
        header(io_detail::parse_safetensors_header(mapping.bytes(), file)) {}

  std::filesystem::path path;
  io_detail::MappedFile mapping;
  io_detail::SafetensorsHeader header;
};

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path)
    : impl_(std::make_unique<Impl>(path)) {}
SafetensorsFile::~SafetensorsFile() = default;
SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;

const std::filesystem::path& SafetensorsFile::path() const { return impl_->path; }

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> names;
  names.reserve(impl_->header.entries.size());
  for (const auto& [name, entry] : impl_->header.entries) names.push_back(name);
  return names;  // std::map iterates in sorted order
}

bool SafetensorsFile::contains(const std::string& name) const {
  return impl_->header.entries.contains(name);
}

TensorView SafetensorsFile::view(const std::string& name) const {
  const auto it = impl_->header.entries.find(name);
  require(it != impl_->header.entries.end(), impl_->path.string(), ": no tensor '", name, "'");
  const io_detail::HeaderEntry& entry = it->second;
  impl_->mapping.check_not_truncated(impl_->path);  // before the caller reads the bytes
  const auto data = impl_->mapping.bytes().subspan(impl_->header.data_offset);
  return TensorView{entry.dtype, entry.shape,
                    data.subspan(static_cast<std::size_t>(entry.begin),
                                 static_cast<std::size_t>(entry.end - entry.begin))};
}

const std::map<std::string, std::string>& SafetensorsFile::metadata() const {
  return impl_->header.metadata;
}

}  // namespace qshard
