// Registration of the hnsw index (filled in by its component).
#include <pybind11/pybind11.h>

namespace pysim::bindings {

void bind_hnsw(pybind11::module_&) {}

}  // namespace pysim::bindings
