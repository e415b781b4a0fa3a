// SafetensorsModel: a Hugging Face model directory, one file or shards listed by an index.
#include <mutex>
#include <optional>

#include "qshard/core/error.hpp"
#include "qshard/core/text_file.hpp"
#include "qshard/io/safetensors.hpp"
#include "strict_json.hpp"

namespace qshard {
namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";

// The directory's only *.safetensors file, or nullopt when there is none or several.
std::optional<std::filesystem::path> sole_safetensors(const std::filesystem::path& directory) {
  std::optional<std::filesystem::path> found;
  int count = 0;
  for (const auto& item : std::filesystem::directory_iterator(directory)) {
    if (item.is_regular_file() && item.path().extension() == ".safetensors") {
      found = item.path();
      ++count;
    }
  }
  return count == 1 ? found : std::nullopt;
}

}  // namespace

struct SafetensorsModel::Impl {
  std::filesystem::path directory;
  std::filesystem::path index;                           // empty without an index
  std::vector<std::filesystem::path> shards;             // file paths
  std::map<std::string, std::size_t> shard_of;           // tensor -> index into shards
  std::vector<std::unique_ptr<SafetensorsFile>> opened;  // by shard, null until first use
  std::mutex mutex;                                      // guards `opened`

  void load_index(const std::filesystem::path& index_path);
  void load_single(const std::filesystem::path& file);
  const SafetensorsFile& shard(std::size_t i);
  void cross_check(std::size_t i, const SafetensorsFile& file);
  std::size_t locate(const std::string& name) const;
};

void SafetensorsModel::Impl::load_index(const std::filesystem::path& index_path) {
  index = index_path;
  const nlohmann::json json =
      io_detail::parse_json_strict(read_text_file(index_path), index_path.string());
  require(json.is_object(), index_path.string(), ": must be a JSON object");
  const auto map = json.find("weight_map");
  require(map != json.end(), index_path.string(), ": missing 'weight_map'");
  require(map->is_object(), index_path.string(), ": 'weight_map' must be an object, not ",
          map->type_name());
  std::map<std::string, std::size_t> shard_ids;
  for (const auto& [tensor, file] : map->items()) {
    require(file.is_string(), index_path.string(), ": 'weight_map' entry of tensor '", tensor,
            "' must be a file name string, not ", file.type_name());
    const std::string name = file.get<std::string>();
    require(!name.empty() && std::filesystem::path(name).is_relative(), index_path.string(),
            ": tensor '", tensor, "' maps to invalid shard name '", name, "'");
    const auto [it, added] = shard_ids.emplace(name, shards.size());
    if (added) {
      const std::filesystem::path shard_path = directory / name;
      require(std::filesystem::is_regular_file(shard_path), index_path.string(), ": shard file ",
              shard_path, " (holding tensor '", tensor, "') does not exist");
      shards.push_back(shard_path);
    }
    shard_of.emplace(tensor, it->second);
  }
  opened.resize(shards.size());
}

void SafetensorsModel::Impl::load_single(const std::filesystem::path& file) {
  shards = {file};
  opened.resize(1);
  opened[0] = std::make_unique<SafetensorsFile>(file);
  for (const std::string& name : opened[0]->names()) shard_of.emplace(name, 0);
}

// Every tensor the index assigns to shard i must be there; every tensor there must be assigned
// to it. Runs once, when the shard is opened.
void SafetensorsModel::Impl::cross_check(const std::size_t i, const SafetensorsFile& file) {
  for (const auto& [name, shard] : shard_of) {
    require(shard != i || file.contains(name), index.string(), ": tensor '", name,
            "' is listed for shard ", shards[i], " but missing from it");
  }
  for (const std::string& name : file.names()) {
    const auto it = shard_of.find(name);
    require(it != shard_of.end(), shards[i], ": tensor '", name, "' is not listed in ", index);
    if (it->second == i) continue;
    const std::size_t other = it->second;
    // Open the other shard outside of this check to say whether the tensor is really in both.
    const bool in_both = opened[other] != nullptr ? opened[other]->contains(name)
                                                  : SafetensorsFile(shards[other]).contains(name);
    require(!in_both, "tensor '", name, "' is present in two shards: ", shards[other], " and ",
            shards[i]);
    throw Error(str(shards[i], ": tensor '", name, "' is in this shard but ", index,
                    " lists it in ", shards[other]));
  }
}

const SafetensorsFile& SafetensorsModel::Impl::shard(const std::size_t i) {
  const std::lock_guard lock(mutex);
  if (opened[i] == nullptr) {
    auto file = std::make_unique<SafetensorsFile>(shards[i]);
    if (!index.empty()) cross_check(i, *file);
    opened[i] = std::move(file);
  }
  return *opened[i];
}

std::size_t SafetensorsModel::Impl::locate(const std::string& name) const {
  const auto it = shard_of.find(name);
  require(it != shard_of.end(), directory.string(), ": no tensor '", name, "' in the model");
  return it->second;
}

SafetensorsModel::SafetensorsModel(const std::filesystem::path& directory)
    : impl_(std::make_unique<Impl>()) {
  impl_->directory = directory;
  require(std::filesystem::is_directory(directory), "model directory ", directory,
          " does not exist");
  if (std::filesystem::exists(directory / kIndexName)) {
    impl_->load_index(directory / kIndexName);
  } else if (std::filesystem::exists(directory / kSingleName)) {
    impl_->load_single(directory / kSingleName);
  } else if (const auto sole = sole_safetensors(directory)) {
    impl_->load_single(*sole);
  } else {
    throw Error(str("model directory ", directory, " has neither ", kIndexName, " nor ",
                    kSingleName, " nor exactly one *.safetensors file"));
  }
}

SafetensorsModel::~SafetensorsModel() = default;
SafetensorsModel::SafetensorsModel(SafetensorsModel&&) noexcept = default;
SafetensorsModel& SafetensorsModel::operator=(SafetensorsModel&&) noexcept = default;

const std::filesystem::path& SafetensorsModel::directory() const { return impl_->directory; }

std::vector<std::string> SafetensorsModel::names() const {
  std::vector<std::string> names;
  names.reserve(impl_->shard_of.size());
  for (const auto& [name, shard] : impl_->shard_of) names.push_back(name);
  return names;
}

bool SafetensorsModel::contains(const std::string& name) const {
  return impl_->shard_of.contains(name);
}

TensorView SafetensorsModel::view(const std::string& name) const {
  return impl_->shard(impl_->locate(name)).view(name);
}

std::filesystem::path SafetensorsModel::file_of(const std::string& name) const {
  return impl_->shards[impl_->locate(name)];
}

void SafetensorsModel::check_all() const {
  for (std::size_t i = 0; i < impl_->shards.size(); ++i) impl_->shard(i);
}

}  // namespace qshard
