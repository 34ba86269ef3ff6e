// flashkmeans._core: converts DLPack arrays (NumPy, PyTorch, CuPy, ...) to TensorViews and forwards
// to fit_into / predict_into with the GIL released. Outputs are allocated by the Python layer, in
// the input's framework and on its device; nothing here copies data.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "flashkmeans/flashkmeans.hpp"

namespace nb = nanobind;
namespace fk = flashkmeans;
using namespace nb::literals;

namespace {

using InArray = nb::ndarray<nb::ro>;
using OutArray = nb::ndarray<>;

std::string dtype_name(nb::dlpack::dtype t) {
  const char* code = "unknown";
  switch (static_cast<nb::dlpack::dtype_code>(t.code)) {
    case nb::dlpack::dtype_code::Int: code = "int"; break;
    case nb::dlpack::dtype_code::UInt: code = "uint"; break;
    case nb::dlpack::dtype_code::Float: code = "float"; break;
    case nb::dlpack::dtype_code::Bfloat: code = "bfloat"; break;
    case nb::dlpack::dtype_code::Complex: code = "complex"; break;
    case nb::dlpack::dtype_code::Bool: return "bool";
    default: break;
  }
  return code + std::to_string(t.bits);
}

[[noreturn]] void fail(fk::ErrorKind kind, const std::string& message) { throw fk::Error(kind, message); }

fk::Device device_of(const nb::ndarray<nb::ro>& a, const char* what) {
  switch (a.device_type()) {
    case nb::device::cpu::value:
    case nb::device::cuda_host::value:  // pinned host memory
      return {fk::DeviceType::cpu, 0};
    case nb::device::cuda::value: return {fk::DeviceType::cuda, a.device_id()};
    default:
      fail(fk::ErrorKind::invalid_type, std::string(what) + " is on DLPack device type " +
                                            std::to_string(a.device_type()) + ": expected CPU or CUDA memory");
  }
}

// A (N, D) or (B, N, D) float32 / float16 / bfloat16 array as a TensorView. bf16_bits marks a
// uint16 array that holds bfloat16 bit patterns (NumPy has no bfloat16 of its own).
fk::TensorView view_of(const InArray& a, bool bf16_bits, const char* what) {
  fk::TensorView v;
  const nb::dlpack::dtype t = a.dtype();
  const auto code = static_cast<nb::dlpack::dtype_code>(t.code);
  if (t.lanes != 1) fail(fk::ErrorKind::invalid_type, std::string(what) + " has vector lanes: expected scalars");
  if (code == nb::dlpack::dtype_code::Float && t.bits == 32) {
    v.dtype = fk::DType::float32;
  } else if (code == nb::dlpack::dtype_code::Float && t.bits == 16) {
    v.dtype = fk::DType::float16;
  } else if ((code == nb::dlpack::dtype_code::Bfloat && t.bits == 16) ||
             (bf16_bits && code == nb::dlpack::dtype_code::UInt && t.bits == 16)) {
    v.dtype = fk::DType::bfloat16;
  } else {
    fail(fk::ErrorKind::invalid_type,
         std::string(what) + " has dtype " + dtype_name(t) + ": expected float32, float16 or bfloat16");
  }
  v.device = device_of(a, what);
  if (a.ndim() == 2) {
    v.batch = 1, v.rows = static_cast<std::int64_t>(a.shape(0)), v.cols = static_cast<std::int64_t>(a.shape(1));
    v.batch_stride = 0, v.row_stride = a.stride(0), v.col_stride = a.stride(1);
  } else if (a.ndim() == 3) {
    v.batch = static_cast<std::int64_t>(a.shape(0)), v.rows = static_cast<std::int64_t>(a.shape(1));
    v.cols = static_cast<std::int64_t>(a.shape(2));
    v.batch_stride = a.stride(0), v.row_stride = a.stride(1), v.col_stride = a.stride(2);
  } else {
    fail(fk::ErrorKind::invalid_argument,
         std::string(what) + " has " + std::to_string(a.ndim()) + " dimensions: expected (N, D) or (B, N, D)");
  }
  v.data = a.data();
  return v;
}

// A caller-allocated output: C-contiguous, of the expected dtype and size, on x's device.
template <class T>
T* out_ptr(const OutArray& a, nb::dlpack::dtype_code code, std::int64_t count, const fk::TensorView& x,
           const char* what) {
  const nb::dlpack::dtype t = a.dtype();
  if (t.code != static_cast<std::uint8_t>(code) || t.bits != 8 * sizeof(T) || t.lanes != 1)
    fail(fk::ErrorKind::invalid_type, std::string(what) + " buffer has dtype " + dtype_name(t) + ": expected " +
                                          (code == nb::dlpack::dtype_code::Int ? "int32" : "float32"));
  std::int64_t expect_stride = 1, size = 1;
  bool contiguous = true;
  for (std::size_t i = a.ndim(); i-- > 0;) {
    contiguous &= a.shape(i) == 1 || a.stride(i) == expect_stride;
    expect_stride *= static_cast<std::int64_t>(a.shape(i));
    size *= static_cast<std::int64_t>(a.shape(i));
  }
  if (!contiguous && size > 0)  // an empty buffer is left for the library to reject with x's shape
    fail(fk::ErrorKind::invalid_argument, std::string(what) + " buffer is not C-contiguous");
  if (size != count)
    fail(fk::ErrorKind::invalid_argument, std::string(what) + " buffer has " + std::to_string(size) +
                                              " elements: expected " + std::to_string(count));
  const bool on_cuda = a.device_type() == nb::device::cuda::value;
  const bool want_cuda = x.device.type == fk::DeviceType::cuda;
  if (on_cuda != want_cuda || (on_cuda && a.device_id() != x.device.id))
    fail(fk::ErrorKind::invalid_argument, std::string(what) + " buffer is not on x's device");
  return static_cast<T*>(a.data());
}

template <class E>
E parse(const std::string& s, std::initializer_list<std::pair<const char*, E>> names, const char* what) {
  std::string list;
  for (const auto& [name, value] : names) {
    if (s == name) return value;
    list += list.empty() ? "" : ", ";
    list += std::string("'") + name + "'";
  }
  fail(fk::ErrorKind::invalid_argument, std::string("unknown ") + what + " '" + s + "': expected one of " + list);
}

fk::Metric parse_metric(const std::string& s) {
  return parse<fk::Metric>(s, {{"euclidean", fk::Metric::euclidean}, {"cosine", fk::Metric::cosine}, {"dot", fk::Metric::dot}},
                           "metric");
}

fk::Precision parse_precision(const std::string& s) {
  return parse<fk::Precision>(s, {{"exact", fk::Precision::exact}, {"tf32", fk::Precision::tf32}}, "precision");
}

// A Python exception raised by the progress callback, carried across the C++ loop (which runs
// without the GIL) and raised again once the GIL is held.
struct CallbackAbort {};

struct Progress {
  nb::object fn;
  std::unique_ptr<nb::python_error> error;

  void operator()(const fk::IterationInfo& it) {
    nb::gil_scoped_acquire gil;
    try {
      if (PyErr_CheckSignals() != 0) throw nb::python_error();  // Ctrl-C stops a fit with progress
      fn(it.batch, it.iteration, it.shift, it.inertia, it.changed);
    } catch (nb::python_error& e) {
      error = std::make_unique<nb::python_error>(std::move(e));
      throw CallbackAbort{};
    }
  }

  [[noreturn]] void reraise() {
    error->restore();
    error.reset();
    throw nb::python_error();
  }
};

nb::tuple fit(const InArray& x, bool x_bf16_bits, const OutArray& labels, const OutArray& centroids,
              const std::optional<OutArray>& distances, std::int64_t n_clusters, int max_iter, double tol,
              const std::string& metric, const std::string& init, const std::optional<InArray>& init_centroids,
              bool init_bf16_bits, std::uint64_t seed, const std::string& empty_clusters,
              const std::string& algorithm, int n_threads, bool final_assignment, const std::string& precision,
              std::uintptr_t cuda_stream, const nb::object& on_iteration) {
  fk::KMeansOptions opt;
  const fk::TensorView xv = view_of(x, x_bf16_bits, "x");
  opt.n_clusters = n_clusters;
  opt.max_iter = max_iter;
  opt.tol = tol;
  opt.metric = parse_metric(metric);
  opt.init = parse<fk::Init>(init, {{"random", fk::Init::random}, {"k-means++", fk::Init::kmeans_plus_plus},
                                    {"given", fk::Init::given}}, "init");
  if (init_centroids) opt.init_centroids = view_of(*init_centroids, init_bf16_bits, "init_centroids");
  opt.seed = seed;
  opt.empty_clusters = parse<fk::EmptyClusters>(
      empty_clusters, {{"relocate", fk::EmptyClusters::relocate}, {"keep", fk::EmptyClusters::keep}}, "empty_clusters");
  opt.algorithm = parse<fk::Algorithm>(
      algorithm, {{"auto", fk::Algorithm::automatic}, {"lloyd", fk::Algorithm::lloyd}, {"elkan", fk::Algorithm::elkan}},
      "algorithm");
  opt.n_threads = n_threads;
  opt.final_assignment = final_assignment;
  opt.precision = parse_precision(precision);
  opt.cuda_stream = reinterpret_cast<void*>(cuda_stream);
  if (n_clusters < 1)  // checked again by the library; needed here before the sizes below
    fail(fk::ErrorKind::invalid_argument,
         "n_clusters = " + std::to_string(n_clusters) + " is not allowed: expected n_clusters >= 1");

  fk::OutputBuffers out;
  out.labels = out_ptr<std::int32_t>(labels, nb::dlpack::dtype_code::Int, xv.batch * xv.rows, xv, "labels");
  out.centroids = out_ptr<float>(centroids, nb::dlpack::dtype_code::Float, xv.batch * n_clusters * xv.cols, xv,
                                 "centroids");
  if (distances)
    out.distances = out_ptr<float>(*distances, nb::dlpack::dtype_code::Float, xv.batch * xv.rows, xv, "distances");

  Progress progress{on_iteration, nullptr};
  if (!on_iteration.is_none()) opt.on_iteration = [&progress](const fk::IterationInfo& it) { progress(it); };

  fk::FitSummary s;
  try {
    nb::gil_scoped_release release;
    s = fk::fit_into(xv, opt, out);
  } catch (const CallbackAbort&) {
    progress.reraise();
  }
  std::vector<bool> converged(s.converged.begin(), s.converged.end());
  return nb::make_tuple(s.n_iter, s.inertia, converged);
}

void predict(const InArray& x, bool x_bf16_bits, const InArray& centroids, bool c_bf16_bits, const OutArray& labels,
             const std::optional<OutArray>& distances, const std::string& metric, int n_threads,
             const std::string& precision, std::uintptr_t cuda_stream) {
  const fk::TensorView xv = view_of(x, x_bf16_bits, "x");
  const fk::TensorView cv = view_of(centroids, c_bf16_bits, "centroids");
  fk::PredictOptions opt;
  opt.metric = parse_metric(metric);
  opt.n_threads = n_threads;
  opt.precision = parse_precision(precision);
  opt.cuda_stream = reinterpret_cast<void*>(cuda_stream);
  fk::OutputBuffers out;
  out.labels = out_ptr<std::int32_t>(labels, nb::dlpack::dtype_code::Int, xv.batch * xv.rows, xv, "labels");
  if (distances)
    out.distances = out_ptr<float>(*distances, nb::dlpack::dtype_code::Float, xv.batch * xv.rows, xv, "distances");
  nb::gil_scoped_release release;
  fk::predict_into(xv, cv, opt, out);
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "flashkmeans' compiled core: fit and predict on DLPack arrays (use the flashkmeans package).";

  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const fk::Error& e) {
      PyObject* type = PyExc_RuntimeError;
      switch (e.kind()) {
        case fk::ErrorKind::invalid_argument: type = PyExc_ValueError; break;
        case fk::ErrorKind::invalid_type: type = PyExc_TypeError; break;
        case fk::ErrorKind::out_of_memory: type = PyExc_MemoryError; break;
        case fk::ErrorKind::unsupported: type = PyExc_NotImplementedError; break;
        case fk::ErrorKind::internal: type = PyExc_RuntimeError; break;
      }
      PyErr_SetString(type, e.what());
    }
  });

  m.def("fit", &fit, "x"_a, "x_bf16_bits"_a, "labels"_a, "centroids"_a, "distances"_a.none(), "n_clusters"_a,
        "max_iter"_a, "tol"_a, "metric"_a, "init"_a, "init_centroids"_a.none(), "init_bf16_bits"_a, "seed"_a,
        "empty_clusters"_a, "algorithm"_a, "n_threads"_a, "final_assignment"_a, "precision"_a, "cuda_stream"_a,
        "on_iteration"_a.none(),
        "Fits x (N, D) or (B, N, D) into the caller's labels (B*N int32), centroids (B*K*D float32) and "
        "optional distances (B*N float32) buffers, which live on x's device. on_iteration(batch, iteration, "
        "shift, inertia, changed) is called after every iteration. Returns (n_iter, inertia, converged), "
        "one entry per batch.");
  m.def("predict", &predict, "x"_a, "x_bf16_bits"_a, "centroids"_a, "centroids_bf16_bits"_a, "labels"_a,
        "distances"_a.none(), "metric"_a, "n_threads"_a, "precision"_a, "cuda_stream"_a,
        "Assigns every point of x to its nearest centroid (centroids (K, D) shared or (B, K, D)), writing the "
        "caller's labels (B*N int32) and optional distances (B*N float32) buffers.");
  m.def("cuda_available", &fk::cuda_available, "Whether this build has the CUDA backend and a CUDA device is visible.");
  m.def("cpu_isa", &fk::cpu_isa, "The SIMD instruction set of the CPU kernels: 'avx512', 'avx2' or 'generic'.");
  m.attr("__version__") = FLASHKMEANS_VERSION;
}
