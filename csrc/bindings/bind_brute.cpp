// Registration of the brute index (filled in by its component).
#include <pybind11/pybind11.h>

namespace pysim::bindings {

void bind_brute(pybind11::module_&) {}

}  // namespace pysim::bindings
