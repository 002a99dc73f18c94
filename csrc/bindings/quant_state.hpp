// Conversion of a quant::StoreState to and from a Python dict of numpy arrays, shared by the
// store's own binding (bind_quant_store.cpp) and the quantised HNSW index's (bind_hnsw.cpp), so
// both persist the records, ranges and float32 copy the same way.
#pragma once

#include <pybind11/pybind11.h>

#include "quant/store.hpp"

namespace pysim::bindings {

namespace py = pybind11;

/// {"n", "lo", "step", "seen_lo", "seen_hi", "codes", "full", "drift"}.
py::dict state_dict(const quant::StoreState& st);
/// The inverse of state_dict for a store with options `opt` (checked by QuantStore::from_state).
quant::StoreState store_state_from_dict(const quant::StoreOptions& opt, const py::dict& d);

} // namespace pysim::bindings
