// The CUDA backend's entry points: validation of device data, points and initial centroids on the
// device, then the Lloyd loop as a CUDA graph of one iteration replayed on the device. The host
// only launches; it reads a flag every few iterations when tol can stop the loop early.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "core/convert.hpp"
#include "core/cuda_entry.hpp"
#include "core/rng.hpp"
#include "core/validate.hpp"
#include "cuda/assign.cuh"
#include "cuda/buffer.cuh"
#include "cuda/data.cuh"
#include "cuda/elements.cuh"
#include "cuda/kmeans_pp.cuh"
#include "cuda/update.cuh"

namespace flashkmeans::cuda {

cudaMemPool_t current_pool() {
  static std::mutex lock;
  static std::vector<cudaMemPool_t> pools;
  int device = 0;
  FK_CUDA(cudaGetDevice(&device));
  std::lock_guard<std::mutex> guard(lock);
  if (pools.size() <= static_cast<std::size_t>(device)) pools.resize(device + 1, nullptr);
  if (!pools[device]) {
    cudaMemPoolProps props{};
    props.allocType = cudaMemAllocationTypePinned;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = device;
    FK_CUDA(cudaMemPoolCreate(&pools[device], &props));
    std::uint64_t keep = 1ull << 30;
    FK_CUDA(cudaMemPoolSetAttribute(pools[device], cudaMemPoolAttrReleaseThreshold, &keep));
  }
  return pools[device];
}

namespace {

// Makes x's device current for the fit and restores the caller's afterwards.
class DeviceScope {
 public:
  explicit DeviceScope(int id) {
    FK_CUDA(cudaGetDevice(&previous_));
    FK_CUDA(cudaSetDevice(id));
  }
  ~DeviceScope() { cudaSetDevice(previous_); }

 private:
  int previous_ = 0;
};

// Per-thread resources a fit reuses instead of creating each time (creating and destroying a
// stream and an event cost ~10-20 us a fit, of ~150 us for a small one): one private stream and
// one event per device, and a pinned host buffer for the small results the host reads back (a
// copy to pageable memory also blocks the host until the copy is done). Released at thread exit.
class ThreadResources {
 public:
  static ThreadResources& get() {
    thread_local ThreadResources r;
    return r;
  }
  ~ThreadResources() {
    for (auto& d : devices_) {
      if (d.stream) cudaStreamDestroy(d.stream);
      if (d.event) cudaEventDestroy(d.event);
    }
    if (pinned_) cudaFreeHost(pinned_);
  }
  void stream_and_event(int device, cudaStream_t& stream, cudaEvent_t& event) {
    if (devices_.size() <= static_cast<std::size_t>(device)) devices_.resize(device + 1);
    PerDevice& d = devices_[device];
    if (!d.stream) FK_CUDA(cudaStreamCreateWithFlags(&d.stream, cudaStreamNonBlocking));
    if (!d.event) FK_CUDA(cudaEventCreateWithFlags(&d.event, cudaEventDisableTiming));
    stream = d.stream, event = d.event;
  }
  /// Pinned host memory of at least `bytes`, or null when that is more than kPinnedBytes.
  unsigned char* pinned(std::size_t bytes) { return bytes > kPinnedBytes ? nullptr : allocation(); }
  /// Four pinned words apart from pinned()'s, for the input check's verdict.
  unsigned* pinned_flags() { return reinterpret_cast<unsigned*>(allocation() + kPinnedBytes); }

 private:
  static constexpr std::size_t kPinnedBytes = 64 * 1024;
  unsigned char* allocation() {
    if (!pinned_) FK_CUDA(cudaMallocHost(reinterpret_cast<void**>(&pinned_), kPinnedBytes + 4 * sizeof(unsigned)));
    return pinned_;
  }
  struct PerDevice {
    cudaStream_t stream = nullptr;
    cudaEvent_t event = nullptr;
  };
  std::vector<PerDevice> devices_;
  unsigned char* pinned_ = nullptr;
};

// The thread's private stream on the current device, started after the work already queued on
// the caller's stream (a stream of our own can be captured into a graph whatever the caller
// passes, the legacy default stream included). The fit is synchronous: it ends with its work done.
class StreamScope {
 public:
  explicit StreamScope(void* user) {
    int device = 0;
    FK_CUDA(cudaGetDevice(&device));
    cudaEvent_t ready;
    ThreadResources::get().stream_and_event(device, stream_, ready);
    FK_CUDA(cudaEventRecord(ready, static_cast<cudaStream_t>(user)));
    FK_CUDA(cudaStreamWaitEvent(stream_, ready, 0));
  }
  ~StreamScope() { cudaStreamSynchronize(stream_); }
  cudaStream_t get() const { return stream_; }
  void sync() const { FK_CUDA(cudaStreamSynchronize(stream_)); }

 private:
  cudaStream_t stream_ = nullptr;
};

class Graph {
 public:
  ~Graph() {
    if (exec_) cudaGraphExecDestroy(exec_);
    if (graph_) cudaGraphDestroy(graph_);
  }
  template <class Fn>
  void capture(cudaStream_t stream, Fn fn) {
    FK_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    try {
      fn();
    } catch (...) {
      cudaGraph_t broken = nullptr;
      cudaStreamEndCapture(stream, &broken);
      if (broken) cudaGraphDestroy(broken);
      throw;
    }
    FK_CUDA(cudaStreamEndCapture(stream, &graph_));
    FK_CUDA(cudaGraphInstantiate(&exec_, graph_, 0));
  }
  void launch(cudaStream_t stream) const { FK_CUDA(cudaGraphLaunch(exec_, stream)); }

 private:
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

// Work buffers carved out of one pool allocation (256-byte aligned each): one allocation call per
// fit instead of one per buffer. add() reserves, allocate() allocates, get() is null for empty ones.
class Arena {
 public:
  explicit Arena(cudaStream_t stream) : buffer_(0, stream) {}
  template <class T>
  std::size_t add(std::int64_t count) {
    const std::size_t at = (size_ + 255) / 256 * 256;
    size_ = at + sizeof(T) * static_cast<std::size_t>(count);
    return count > 0 ? at : kNone;
  }
  void allocate() { buffer_.resize(std::max<std::size_t>(size_, 1)); }
  template <class T>
  T* get(std::size_t at) const {
    return at == kNone ? nullptr : reinterpret_cast<T*>(buffer_.get() + at);
  }

 private:
  static constexpr std::size_t kNone = ~std::size_t{0};
  DeviceBuffer<unsigned char> buffer_;
  std::size_t size_ = 0;
};

template <class T>
void upload(DeviceBuffer<T>& dst, const std::vector<T>& src, cudaStream_t stream) {
  dst.resize(src.size());
  FK_CUDA(cudaMemcpyAsync(dst.get(), src.data(), sizeof(T) * src.size(), cudaMemcpyHostToDevice, stream));
}
// Copies count values to the host and waits for them (through the thread's pinned buffer when
// they fit in it).
template <class T>
std::vector<T> download(const T* src, std::size_t count, cudaStream_t stream) {
  std::vector<T> out(count);
  const std::size_t bytes = sizeof(T) * count;
  unsigned char* pinned = ThreadResources::get().pinned(bytes);
  if (count) FK_CUDA(cudaMemcpyAsync(pinned ? static_cast<void*>(pinned) : out.data(), src, bytes, cudaMemcpyDeviceToHost, stream));
  FK_CUDA(cudaStreamSynchronize(stream));
  if (pinned && count) std::memcpy(out.data(), pinned, bytes);
  return out;
}

MmaKind mma_kind(DType t, Precision p) {
  if (t == DType::float16) return MmaKind::f16;
  if (t == DType::bfloat16) return MmaKind::bf16;
  return p == Precision::tf32 ? MmaKind::tf32 : MmaKind::tf32x3;
}

// NaN or infinity anywhere, and under cosine rows without a direction, are errors (the host
// checks' messages; device data is only read here). x and, when given (c_name set), c are
// scanned together: one round trip. xx (optional): the squared norms of x's rows, from the same
// read (see launch_bad_rows). In two halves: the constructor queues the scans and the copy of
// their verdict to pinned memory, finish() waits for it and throws; the fit queues its setup in
// between, so that the host prepares while the device checks.
class InputCheck {
 public:
  InputCheck(const TensorView& x, const TensorView& c, const char* c_name, Metric metric, cudaStream_t stream,
             float* xx = nullptr)
      : x_(x), c_(c), c_name_(c_name), stream_(stream), scratch_(4, stream), found_(ThreadResources::get().pinned_flags()) {
    const bool zero_rows = metric == Metric::cosine;
    launch_bad_rows(x, zero_rows, scratch_.get(), stream, xx);
    if (c_name) launch_bad_rows(c, zero_rows, scratch_.get() + 2, stream);
    FK_CUDA(cudaMemcpyAsync(found_, scratch_.get(), sizeof(unsigned) * (c_name ? 4 : 2), cudaMemcpyDeviceToHost, stream));
  }
  void finish() {
    FK_CUDA(cudaStreamSynchronize(stream_));
    const BadRows bx = bad_rows_of(found_);
    if (bx.nonfinite >= 0) detail::throw_nonfinite_row("x", bx.nonfinite, x_.rows);
    if (bx.zero >= 0) detail::throw_zero_row("x", bx.zero, x_.rows);
    if (!c_name_) return;
    const BadRows bc = bad_rows_of(found_ + 2);
    if (bc.nonfinite >= 0) detail::throw_nonfinite_row(c_name_, bc.nonfinite, c_.rows);
    if (bc.zero >= 0) detail::throw_zero_row(c_name_, bc.zero, c_.rows);
  }

 private:
  const TensorView& x_;
  const TensorView& c_;
  const char* c_name_;
  cudaStream_t stream_;
  DeviceBuffer<unsigned> scratch_;
  unsigned* found_;
};

constexpr std::int64_t kMaxBatches = 65535;  // the largest second grid dimension

void check_sizes(const TensorView& x, std::int64_t k) {
  FK_CHECK(x.batch * x.rows <= 0x7fffffffLL && x.batch * k <= 0x7fffffffLL, invalid_argument,
           "x has B * N = " << x.batch * x.rows << " points and B * K = " << x.batch * k
                            << " clusters; the CUDA backend supports up to 2^31 - 1 of each");
  // The kernels' grids put the batches on their second axis.
  FK_CHECK(x.batch <= kMaxBatches, invalid_argument,
           "x has B = " << x.batch << " batches; the CUDA backend takes up to " << kMaxBatches
                        << " per call: split the batches over several calls");
}

// The points as the kernels read them: the caller's memory when its layout allows (unit column
// stride, 16-byte aligned rows, no normalising), otherwise a staged copy. Cosine assigns on unit
// rows in the input's type; for 16-bit input the update reads the original rows times 1 / ||x||
// in float32 instead, so that the means are as exact as the CPU backend's.
struct Points {
  explicit Points(cudaStream_t stream) : staged(0, stream), raw(0, stream), scale(0, stream), xx(0, stream) {}
  PointsView assign;  ///< what the assignment reads
  PointsView update;  ///< what the update, relocation and final distances read
  DeviceBuffer<unsigned char> staged, raw;
  DeviceBuffer<float> scale;
  DeviceBuffer<float> xx;  ///< fit, euclidean: (B, N) ||x||^2 of the rows, written by the input check
};

PointsView view_of(const void* data, const TensorView& x, std::int64_t batch_stride, std::int64_t row_stride) {
  return {data, x.dtype, batch_stride, row_stride, x.batch, x.rows, x.cols, nullptr};
}

void prepare_points(const TensorView& x, Metric metric, Points& p, cudaStream_t stream) {
  const std::int64_t es = element_bytes(x.dtype), ld = (x.cols + 7) / 8 * 8, count = x.batch * x.rows;
  // The assignment reads aligned rows of unit column stride in place; the Hopper kernel reads
  // them through a TMA tensor map, whose strides are documented as nested (a row stride of at
  // least a row, a batch stride of at least N rows): other views (zero strides, sliding windows,
  // interleaved batches) are staged.
  const bool nested = (x.rows <= 1 || x.row_stride >= x.cols) &&
                      (x.batch <= 1 || x.batch_stride >= (x.rows <= 1 ? x.cols : x.rows * x.row_stride));
  const bool aligned = x.col_stride == 1 && nested && (x.row_stride * es) % 16 == 0 &&
                       (x.batch <= 1 || (x.batch_stride * es) % 16 == 0) &&
                       reinterpret_cast<std::uintptr_t>(x.data) % 16 == 0;
  const bool cosine = metric == Metric::cosine;
  p.assign = view_of(x.data, x, x.batch_stride, x.row_stride);
  if (!aligned || cosine) {
    p.staged.resize(static_cast<std::size_t>(count * ld * es));
    stage_rows(x, p.staged.get(), x.dtype, ld, cosine, stream);
    p.assign = view_of(p.staged.get(), x, x.rows * ld, ld);
  }
  p.update = p.assign;
  if (cosine && x.dtype != DType::float32) {
    p.update = view_of(x.data, x, x.batch_stride, x.row_stride);
    if (x.col_stride != 1) {
      p.raw.resize(static_cast<std::size_t>(count * ld * es));
      stage_rows(x, p.raw.get(), x.dtype, ld, false, stream);
      p.update = view_of(p.raw.get(), x, x.rows * ld, ld);
    }
    p.scale.resize(static_cast<std::size_t>(count));
    inverse_norms(x, p.scale.get(), stream);
    p.update.row_scale = p.scale.get();
  }
}

// Centroids (B, K, D) float32 from a view on the host or on the device.
void load_centroids(const TensorView& v, std::int64_t batches, float* c, cudaStream_t stream) {
  const std::int64_t kd = v.rows * v.cols;
  if (v.device.type == DeviceType::cpu) {
    std::vector<float> host(static_cast<std::size_t>(batches * kd));
    for (std::int64_t b = 0; b < batches; ++b) detail::copy_batch(v, v.batch == 1 ? 0 : b, host.data() + b * kd);
    FK_CUDA(cudaMemcpyAsync(c, host.data(), sizeof(float) * host.size(), cudaMemcpyHostToDevice, stream));
    FK_CUDA(cudaStreamSynchronize(stream));  // host is about to go out of scope
    return;
  }
  // One pass over every batch's rows (one set of centroids for all batches: a zero batch stride).
  TensorView all = v;
  all.batch = batches;
  if (v.batch == 1) all.batch_stride = 0;
  stage_rows(all, c, DType::float32, v.cols, false, stream);
}

// The initial centroids into c (B, K, D): given, random rows (the CPU backend's draws) or k-means++
// over the points as the update reads them (unit rows under cosine).
// (Given centroids on the device were checked with x.)
void initial_centroids(const TensorView& x, const PointsView& points, const KMeansOptions& opt, float* c,
                       cudaStream_t stream) {
  const std::int64_t k = opt.n_clusters;
  switch (opt.init) {
    case Init::given:
      load_centroids(opt.init_centroids, x.batch, c, stream);
      break;
    case Init::random: {
      // The same rows as the CPU backend: K draws with replacement from batch_rng(seed, b).
      std::vector<std::int64_t> rows(static_cast<std::size_t>(x.batch * k));
      for (std::int64_t b = 0; b < x.batch; ++b) {
        detail::Rng rng = detail::batch_rng(opt.seed, b);
        for (std::int64_t j = 0; j < k; ++j) rows[b * k + j] = rng.below(x.rows);
      }
      DeviceBuffer<std::int64_t> ids(0, stream);
      upload(ids, rows, stream);
      gather_rows(x, ids.get(), k, c, stream);
      FK_CUDA(cudaStreamSynchronize(stream));
      break;
    }
    case Init::kmeans_plus_plus:
      kmeans_plus_plus(points, k, opt.seed, c, stream);
      break;
  }
  if (opt.metric == Metric::cosine) normalize_rows(c, x.batch * k, x.cols, stream);
}

// FLASHKMEANS_CUDA_PROFILE=1: the loop runs without a graph, with events between its stages,
// and prints each stage's mean time per iteration to stderr (a development aid).
class StageProfiler {
 public:
  static StageProfiler* from_env() {
    static StageProfiler profiler;
    const char* v = std::getenv("FLASHKMEANS_CUDA_PROFILE");
    return v && *v && *v != '0' ? &profiler : nullptr;
  }
  void start(cudaStream_t st) { mark("", st); }
  void mark(const char* stage, cudaStream_t st) {
    cudaEvent_t e;
    FK_CUDA(cudaEventCreate(&e));
    FK_CUDA(cudaEventRecord(e, st));
    events_.push_back({stage, e});
  }
  void report(cudaStream_t st) {
    FK_CUDA(cudaStreamSynchronize(st));
    std::vector<std::pair<std::string, double>> total;
    int iterations = 0;
    for (std::size_t i = 1; i < events_.size(); ++i) {
      if (events_[i].first.empty()) continue;
      float ms = 0;
      FK_CUDA(cudaEventElapsedTime(&ms, events_[i - 1].second, events_[i].second));
      auto it = std::find_if(total.begin(), total.end(), [&](const auto& t) { return t.first == events_[i].first; });
      if (it == total.end()) total.push_back({events_[i].first, ms}); else it->second += ms;
    }
    for (const auto& e : events_) iterations += e.first.empty();
    for (const auto& e : events_) cudaEventDestroy(e.second);
    events_.clear();
    std::fprintf(stderr, "flashkmeans cuda profile (mean per iteration over %d):", iterations);
    for (const auto& t : total) std::fprintf(stderr, " %s %.1f us;", t.first.c_str(), 1000 * t.second / std::max(1, iterations));
    std::fprintf(stderr, "\n");
  }

 private:
  std::vector<std::pair<std::string, cudaEvent_t>> events_;
};

// Whether the iteration runs as a CUDA graph (captured and instantiated once per fit, then
// replayed) or as direct launches. The graph costs ~28 us per fit to capture and instantiate and
// saves ~1 us per iteration of the scan path's two launches (H100, 5K x 64, K = 50): direct
// launches there up to 32 iterations; the other paths' 4 to 9 launches keep the graph.
// FLASHKMEANS_CUDA_GRAPH=0 / 1 forces either (development aid).
bool use_graph(const LoopState& s, int max_iter) {
  if (const char* v = std::getenv("FLASHKMEANS_CUDA_GRAPH"); v && *v) return *v != '0';
  return !s.scan || max_iter > 32;
}

// How often the host looks at the convergence flag when tol can stop the loop early.
constexpr int kCheckEvery = 8;

FitSummary fit_on_device(const TensorView& x, const KMeansOptions& opt, const OutputBuffers& out) {
  DeviceScope device(x.device.id);
  StreamScope scope(opt.cuda_stream);
  const cudaStream_t st = scope.get();
  const std::int64_t B = x.batch, N = x.rows, D = x.cols, K = opt.n_clusters, BN = B * N, BK = B * K;
  check_sizes(x, K);

  // The input check also gives the squared norms (euclidean): one read of the points for both.
  Points pts(st);
  const bool euclidean = opt.metric == Metric::euclidean;
  if (euclidean) pts.xx.resize(static_cast<std::size_t>(BN));
  const bool given_here = opt.init == Init::given && opt.init_centroids.device.type == DeviceType::cuda;
  InputCheck check(x, opt.init_centroids, given_here ? "init_centroids" : nullptr, opt.metric, st,
                   euclidean ? pts.xx.get() : nullptr);
  prepare_points(x, opt.metric, pts, st);

  LoopState s;
  s.batches = B, s.n = N, s.k = K, s.d = D, s.metric = opt.metric;
  s.max_iter = opt.max_iter, s.tol = opt.tol, s.final_assignment = opt.final_assignment;
  s.plan = assign_plan(mma_kind(x.dtype, opt.precision), K, D, x.device.id);
  int multiprocessors = 0;
  FK_CUDA(cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, x.device.id));
  s.scan = plan_scan(s);
  if (!s.scan) plan_dense(s, multiprocessors, BN * D * element_bytes(x.dtype));
  const bool sort = !s.scan && !s.dense;  // sort-inverse: the only path that sorts (the moves)
  const bool packed_bias = wants_bias_rows(s.plan, opt.metric);
  if (sort) plan_moves(s, multiprocessors);
  s.scan_bytes = sort ? move_scan_bytes(s) : 0;
  // The work buffers, carved out of one pool allocation. The per-batch state that starts at zero
  // (and the summary the host reads back at the end) is one span: one memset, one copy back.
  const std::size_t ct_bytes = static_cast<std::size_t>(B) * s.plan.kp * s.plan.dp * (x.dtype == DType::float32 ? 4 : 2);
  const std::int64_t moves_n = sort ? move_capacity(s) : 0, partial_n = s.dense ? BK * dense_blocks_per_batch(s) * D : 0,
                     run_rows_n = sort ? s.runs + BK + 1 : 0, groups_n = sort ? BK * s.tiles + 1 : 0;
  const bool relocate = opt.empty_clusters == EmptyClusters::relocate;
  // The sort and scan paths update incrementally (member sums kept, moved points read); the
  // relocation edits the sums and counts it is given, so it then gets copies.
  const bool incremental = sort || (s.scan && plan_scan_incremental(s));
  const std::size_t state_bytes = 8 * B + 4 * B + 4 * B + 8 + 4 * (B + 1) + 4 * B + B;  // see below
  Arena arena(st);
  const std::size_t at_c_prev = arena.add<float>(BK * D), at_h = arena.add<float>(B * s.plan.kp),
                    at_partial = arena.add<float>(partial_n), at_run_sums = arena.add<double>(run_rows_n * D),
                    at_run_counts = arena.add<std::int32_t>(run_rows_n),
                    at_members = arena.add<double>(incremental && relocate ? BK * D : 0),
                    at_member_counts = arena.add<std::int64_t>(incremental && relocate ? BK : 0),
                    at_moved = arena.add<std::uint16_t>(incremental ? B * moved_words(N) : 0),
                    at_left_labels = arena.add<std::int32_t>(incremental ? BN : 0),
                    at_partial_counts = arena.add<std::int32_t>(s.dense ? BK * dense_blocks_per_batch(s) : 0),
                    at_ct = arena.add<unsigned char>(ct_bytes), at_moves = arena.add<int2>(moves_n),
                    at_tile_counts = arena.add<std::uint32_t>(groups_n),
                    at_tile_starts = arena.add<std::uint32_t>(groups_n),
                    at_scan_tmp = arena.add<unsigned char>(s.scan_bytes),
                    at_sums = arena.add<double>(BK * D), at_shift_k = arena.add<double>(BK),
                    at_objective_k = arena.add<double>(BK), at_sum_xx = arena.add<double>(opt.on_iteration ? B : 0),
                    at_counts = arena.add<std::int64_t>(BK),
                    at_history = arena.add<double>(opt.on_iteration ? B * opt.max_iter * 3 : 0),
                    at_dist = arena.add<float>(out.distances ? 0 : BN),
                    at_dist_parts = arena.add<double>(B * label_distance_parts(B, N)), at_state = arena.add<unsigned char>(state_bytes),
                    at_bias = arena.add<unsigned char>(packed_bias ? B * s.plan.kp * kBiasRowBytes : 0),
                    at_bias_scale = arena.add<float>(packed_bias ? B + 1 : 0);
  arena.allocate();
  // state: inertia (B double), n_iter (B int), changed (B int), iteration and finished (int),
  // tickets (B + 1 unsigned), the final distances' tickets (B unsigned), done (B bytes)
  unsigned char* state = arena.get<unsigned char>(at_state);
  double* inertia = reinterpret_cast<double*>(state);
  int* n_iter = reinterpret_cast<int*>(inertia + B);
  int* changed = n_iter + B;
  int* counters = changed + B;
  unsigned* tickets = reinterpret_cast<unsigned*>(counters + 2);
  unsigned* dist_tickets = tickets + B + 1;
  std::uint8_t* done = reinterpret_cast<std::uint8_t*>(dist_tickets + B);
  float* dist = out.distances ? out.distances : arena.get<float>(at_dist);
  double* history = arena.get<double>(at_history);

  s.c_prev = arena.get<float>(at_c_prev), s.ct = arena.get<unsigned char>(at_ct), s.h = arena.get<float>(at_h);
  s.moves = arena.get<int2>(at_moves);
  s.tile_counts = arena.get<std::uint32_t>(at_tile_counts), s.tile_starts = arena.get<std::uint32_t>(at_tile_starts);
  s.scan_tmp = arena.get<unsigned char>(at_scan_tmp);
  s.run_sums = arena.get<double>(at_run_sums), s.run_counts = arena.get<std::int32_t>(at_run_counts);
  s.partial = arena.get<float>(at_partial), s.partial_counts = arena.get<std::int32_t>(at_partial_counts);
  s.sums = arena.get<double>(at_sums), s.counts = arena.get<std::int64_t>(at_counts);
  s.members = incremental && relocate ? arena.get<double>(at_members) : s.sums;
  s.member_counts = incremental && relocate ? arena.get<std::int64_t>(at_member_counts) : s.counts;
  std::int32_t* left_labels = arena.get<std::int32_t>(at_left_labels);
  s.left_labels = left_labels;
  if (const char* v = std::getenv("FLASHKMEANS_INCREMENTAL"); s.scan && v && *v == '0') s.left_labels = nullptr;  // development aid: full scans
  std::uint16_t* moved = arena.get<std::uint16_t>(at_moved);
  s.moved = moved;
  s.shift_k = arena.get<double>(at_shift_k), s.objective_k = arena.get<double>(at_objective_k);
  s.sum_xx = arena.get<double>(at_sum_xx), s.changed = changed, s.done = done, s.n_iter = n_iter;
  s.history = history, s.iteration = counters, s.finished = counters + 1, s.tickets = tickets;
  s.labels = out.labels, s.dist = dist;

  FK_CUDA(cudaMemsetAsync(state, 0, state_bytes, st));
  if (sort) {  // the members start empty: the first assignment moves every point (from label -1)
    FK_CUDA(cudaMemsetAsync(s.members, 0, sizeof(double) * BK * D, st));
    FK_CUDA(cudaMemsetAsync(s.member_counts, 0, sizeof(std::int64_t) * BK, st));
  }
  // The sum of squared norms enters only the objective reported per iteration.
  if (opt.metric == Metric::euclidean && opt.on_iteration) batch_sums(pts.xx.get(), B, N, arena.get<double>(at_sum_xx), st);

  // The caller's buffers are first written here, after every allocation and the input check:
  // running out of device memory or bad input leaves them untouched.
  check.finish();
  s.c = out.centroids;
  initial_centroids(x, pts.update, opt, s.c, st);
  FK_CUDA(cudaMemsetAsync(out.labels, 0xff, sizeof(std::int32_t) * BN, st));  // -1: no label yet
  prepare_centroids(s, st);
  // The bias rows serve the whole fit (a batch whose sigma could not be chosen takes the lookup fold).
  if (packed_bias) {
    s.bias = arena.get<unsigned char>(at_bias), s.bias_scale = arena.get<float>(at_bias_scale);
    prepare_bias(s, pts.xx.get(), st);
  }

  AssignArgs a;
  a.x = pts.assign.data, a.x_batch_stride = pts.assign.batch_stride, a.x_row_stride = pts.assign.row_stride;
  a.n = N, a.d = D, a.k = K, a.batches = B, a.ct = s.ct, a.h = s.h, a.metric = opt.metric;
  a.labels = out.labels, a.dist = dist, a.xx = pts.xx.get(), a.changed = changed;
  a.skip = done;
  a.moved = moved, a.left_labels = left_labels;
  a.bias = s.bias, a.bias_scale = s.bias_scale;
  if (!incremental) a.moved = nullptr;
  if (!relocate) a.dist = nullptr;  // only the relocation reads the distances of an iteration

  prepare_assign(s.plan);
  prepare_update(s);
  // One iteration; mark(stage) is called after each stage (the profiler's hook).
  auto body = [&](const StageMark& mark) {
    launch_assign(s.plan, a, st);
    mark("assign");
    if (s.scan) {
      scan_update(s, pts.update, relocate, st, mark);  // sums, relocation, finalize, bookkeeping
      return;
    }
    if (s.dense) {
      dense_sums(s, pts.update, st, mark);
      if (relocate) relocate_empty(s, pts.update, st);
      mark("relocate");
      finish_iteration(s, st, mark);
      return;
    }
    sort_moves(s, st, mark);
    sort_update(s, pts.update, relocate, st, mark);  // sums, centroids, relocation, bookkeeping
  };
  if (StageProfiler* prof = StageProfiler::from_env()) {
    for (int it = 0; it < opt.max_iter; ++it) {
      prof->start(st);
      body([&](const char* stage) { prof->mark(stage, st); });
    }
    prof->report(st);
  } else {
    const StageMark none = [](const char*) {};
    const bool graph = use_graph(s, opt.max_iter);
    Graph iteration;
    if (graph) iteration.capture(st, [&] { body(none); });
    int finished = 0;
    for (int launched = 0; launched < opt.max_iter;) {
      const int chunk = opt.tol > 0 ? std::min(kCheckEvery, opt.max_iter - launched) : opt.max_iter - launched;
      for (int i = 0; i < chunk; ++i)
        if (graph) iteration.launch(st); else body(none);
      launched += chunk;
      if (launched < opt.max_iter) {
        FK_CUDA(cudaMemcpyAsync(&finished, s.finished, sizeof(int), cudaMemcpyDeviceToHost, st));
        scope.sync();
        if (finished) break;
      }
    }
  }

  if (opt.final_assignment) {
    AssignArgs last = a;
    last.moved = nullptr, last.left_labels = nullptr, last.changed = nullptr, last.skip = nullptr, last.dist = nullptr;
    launch_assign(s.plan, last, st);
  } else if (opt.tol > 0) {  // with tol <= 0 no batch converges: nothing to restore
    restore_converged(s, st);
  }
  // The distances reported come from the differences in float32, not from the expanded form the
  // assignment ranks with (which loses digits far from the origin and in tf32).
  label_distances(s, pts.update, dist, st, {inertia, arena.get<double>(at_dist_parts), dist_tickets});

  const std::vector<unsigned char> summary = download(state, state_bytes, st);
  FitSummary r;
  r.inertia.resize(B), r.n_iter.resize(B), r.converged.resize(B);
  std::memcpy(r.inertia.data(), summary.data(), sizeof(double) * B);
  std::memcpy(r.n_iter.data(), summary.data() + (reinterpret_cast<unsigned char*>(n_iter) - state), sizeof(int) * B);
  std::memcpy(r.converged.data(), summary.data() + (done - state), B);
  if (opt.on_iteration) {
    const auto hist = download(history, static_cast<std::size_t>(B) * opt.max_iter * 3, st);
    for (std::int64_t b = 0; b < B; ++b)
      for (int it = 0; it < r.n_iter[b]; ++it) {
        const double* e = hist.data() + (b * opt.max_iter + it) * 3;
        opt.on_iteration({b, it + 1, e[0], e[1], static_cast<int>(e[2])});
      }
  }
  return r;
}

void predict_on_device(const TensorView& x, const TensorView& centroids, const PredictOptions& opt,
                       const OutputBuffers& out) {
  DeviceScope device(x.device.id);
  StreamScope scope(opt.cuda_stream);
  const cudaStream_t st = scope.get();
  const std::int64_t B = x.batch, N = x.rows, D = x.cols, K = centroids.rows;
  check_sizes(x, K);
  InputCheck(x, centroids, centroids.device.type == DeviceType::cuda ? "centroids" : nullptr, opt.metric, st).finish();
  Points pts(st);
  prepare_points(x, opt.metric, pts, st);

  LoopState s;
  s.batches = B, s.n = N, s.k = K, s.d = D, s.metric = opt.metric;
  s.plan = assign_plan(mma_kind(x.dtype, opt.precision), K, D, x.device.id);
  DeviceBuffer<float> c(B * K * D, st), h(static_cast<std::size_t>(B) * s.plan.kp, st);
  DeviceBuffer<unsigned char> ct(static_cast<std::size_t>(B) * s.plan.kp * s.plan.dp * (x.dtype == DType::float32 ? 4 : 2), st);
  load_centroids(centroids, B, c.get(), st);
  if (opt.metric == Metric::cosine) normalize_rows(c.get(), B * K, D, st);
  s.c = c.get(), s.ct = ct.get(), s.h = h.get();
  prepare_centroids(s, st);

  AssignArgs a;
  a.x = pts.assign.data, a.x_batch_stride = pts.assign.batch_stride, a.x_row_stride = pts.assign.row_stride;
  a.n = N, a.d = D, a.k = K, a.batches = B, a.ct = ct.get(), a.h = h.get(), a.metric = opt.metric;
  a.labels = out.labels;
  prepare_assign(s.plan);
  launch_assign(s.plan, a, st);
  if (out.distances) {
    s.labels = out.labels;
    label_distances(s, pts.update, out.distances, st);
  }
  scope.sync();
}

}  // namespace
}  // namespace flashkmeans::cuda

namespace flashkmeans::detail {

bool cuda_built() { return true; }

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

FitSummary cuda_fit_into(const TensorView& x, const KMeansOptions& opt, const OutputBuffers& out) {
  return cuda::fit_on_device(x, opt, out);
}

KMeansResult cuda_fit(const TensorView& x, const KMeansOptions& opt) {
  cuda::DeviceScope device(x.device.id);
  const std::int64_t bn = x.batch * x.rows, bkd = x.batch * opt.n_clusters * x.cols;
  const auto stream = static_cast<cudaStream_t>(opt.cuda_stream);
  cuda::DeviceBuffer<std::int32_t> labels(bn, stream);
  cuda::DeviceBuffer<float> centroids(bkd, stream);
  FitSummary s = cuda_fit_into(x, opt, {labels.get(), centroids.get(), nullptr});
  KMeansResult r;
  r.batch = x.batch, r.n = x.rows, r.k = opt.n_clusters, r.d = x.cols;
  r.labels.resize(bn);
  r.centroids.resize(bkd);
  FK_CUDA(cudaMemcpyAsync(r.labels.data(), labels.get(), sizeof(std::int32_t) * bn, cudaMemcpyDeviceToHost, stream));
  FK_CUDA(cudaMemcpyAsync(r.centroids.data(), centroids.get(), sizeof(float) * bkd, cudaMemcpyDeviceToHost, stream));
  FK_CUDA(cudaStreamSynchronize(stream));
  r.n_iter = std::move(s.n_iter), r.inertia = std::move(s.inertia), r.converged = std::move(s.converged);
  return r;
}

void cuda_predict_into(const TensorView& x, const TensorView& centroids, const PredictOptions& opt, const OutputBuffers& out) {
  cuda::predict_on_device(x, centroids, opt, out);
}

PredictResult cuda_predict(const TensorView& x, const TensorView& centroids, const PredictOptions& opt) {
  cuda::DeviceScope device(x.device.id);
  const std::int64_t bn = x.batch * x.rows;
  const auto stream = static_cast<cudaStream_t>(opt.cuda_stream);
  cuda::DeviceBuffer<std::int32_t> labels(bn, stream);
  cuda::DeviceBuffer<float> dist(bn, stream);
  cuda_predict_into(x, centroids, opt, {labels.get(), nullptr, dist.get()});
  PredictResult r;
  r.batch = x.batch, r.n = x.rows;
  r.labels.resize(bn);
  r.distances.resize(bn);
  FK_CUDA(cudaMemcpyAsync(r.labels.data(), labels.get(), sizeof(std::int32_t) * bn, cudaMemcpyDeviceToHost, stream));
  FK_CUDA(cudaMemcpyAsync(r.distances.data(), dist.get(), sizeof(float) * bn, cudaMemcpyDeviceToHost, stream));
  FK_CUDA(cudaStreamSynchronize(stream));
  return r;
}

}  // namespace flashkmeans::detail
