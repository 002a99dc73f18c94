// Registration of the kdtree index (filled in by its component).
#include <pybind11/pybind11.h>

namespace pysim::bindings {

void bind_kdtree(pybind11::module_&) {}

}  // namespace pysim::bindings
