#include "qshard/io/hdf5_app.hpp"

#include <utility>

#include "qshard/io/hdf5.hpp"

namespace qshard {

App hdf5_app(std::string name) {
  App app;
  app.name = std::move(name);
  app.start = [] { h5::silence_library_errors(); };
  return app;
}

}  // namespace qshard
