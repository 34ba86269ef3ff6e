// Shared between the readers of src/io (not part of the io interface).
#pragma once

#include <string>
#include <vector>

#include "io/io.hpp"

namespace flashkmeans::io {

/// "(3, 4)", "(5,)": NumPy's spelling of a shape, for messages.
std::string shape_string(const std::vector<std::int64_t>& shape);
/// Bytes per element of a NumPy type string such as "<f4"; 0 for types not read here.
std::size_t descr_item_size(const std::string& descr);

Dataset read_npy_dataset(const Input& input, const ReadOptions& options);
Dataset read_vecs_dataset(const Input& input, Format format);
Dataset read_csv_dataset(const Input& input, const ReadOptions& options);
Dataset read_raw_dataset(const Input& input, const ReadOptions& options);
/// Error(invalid_argument) unless options give raw input a positive shape.
void check_raw_shape(const std::string& name, const ReadOptions& options);

}  // namespace flashkmeans::io
