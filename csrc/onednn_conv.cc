// jaxconv's oneDNN extension: XLA FFI handlers for a convolution's forward, input gradient
// (backward data) and weight gradient (backward weights) on oneDNN's CPU primitives.
//
// One handler per role, each for 1-, 2- and 3-D convs in either layout (NHWC/HWIO or
// NCHW/OIHW), any stride, explicit (lo, hi) padding, kernel dilation and feature groups
// (depthwise included), float32 or bfloat16 inputs with a float32 or bfloat16 result. The
// forward optionally takes a bias and applies ReLU as oneDNN post-ops. With `transposed` the
// three are oneDNN's deconvolution (what lax calls an input-dilated conv; Python passes the
// stride, padding and flipped kernel of that form).
//
// A fourth handler, Inference, is a frozen model's conv (jaxconv.nn.freeze): forward_inference
// with the bias, an optional residual add (oneDNN's sum post-op on an output buffer that XLA
// aliases to the residual) and ReLU as post-ops, and weights that Python packed once
// into the primitive's own layout (jaxconv_onednn_pack) — used as they are when their layout
// fingerprint matches the primitive's, reordered from the plain weights otherwise. A fifth,
// Bottleneck, runs Inception's bottleneck (a 1×1 reduce, ReLU, a k×k conv, ReLU) in one call,
// image by image on each OpenMP thread where the batch allows (BottleneckImpl). A sixth and a
// seventh run training-mode batch normalization, forward (with the ReLU fused) and backward
// (BatchNormForwardImpl, BatchNormBackwardImpl).
//
// XLA's buffers are used in place: every activation is described to oneDNN with its own
// strides, so nothing but the (small) weights is ever reordered. Primitives are built once per
// configuration and kept in a least-recently-used cache of bounded size (Cache below); Python
// has validated every argument (including that every geometry value fits oneDNN's 32-bit
// kernels) before a call reaches here, so an error below is an internal one and comes back as
// an FFI error, never an abort.
//
// Threads: oneDNN (OpenMP build) uses every core for one primitive. Executions are serialized
// by one mutex (ExecutionMutex) so that two XLA threads never start two OpenMP teams on the
// same cores (on 2 cores, two teams of 2 spinning threads each run slower than one after the
// other) and so that they can share one scratchpad and one stream. The cache has its own
// mutex, held only to look up, insert or evict; a cached primitive is reference-counted, so
// evicting it never frees one that another thread is about to run.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <cstdint>
#include <cstring>
#include <cstdlib>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include <omp.h>

#include "dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using dims = dnnl::memory::dims;
using dt = dnnl::memory::data_type;

namespace {

enum Role : int64_t { kForward = 0, kBackwardData = 1, kBackwardWeights = 2 };

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// Held while a primitive runs (see the threads note at the top).
std::mutex& ExecutionMutex() {
  static std::mutex mu;
  return mu;
}

// Where a call's time goes, for the per-call overhead breakdown (docs/performance.md): with
// JAXCONV_ONEDNN_PROFILE=1 in the environment at load, the forward and inference handlers add
// the nanoseconds of each phase to these counters (read and reset by jaxconv_onednn_profile).
// Off, a phase costs one branch on a constant.
enum Phase : int { kDescribe = 0, kLookup, kLock, kSetup, kExecute, kWait, kPhases };

struct Profile {
  const bool on = [] {
    const char* env = std::getenv("JAXCONV_ONEDNN_PROFILE");
    return env != nullptr && env[0] != '\0' && env[0] != '0';
  }();
  std::mutex mu;
  int64_t calls = 0;
  int64_t ns[kPhases] = {};
};

Profile& Profiler() {
  static Profile p;
  return p;
}

// Times the phases of one call: Mark(phase) charges the time since the previous mark to it.
class PhaseClock {
 public:
  PhaseClock() : on_(Profiler().on) {
    if (on_) last_ = std::chrono::steady_clock::now();
  }
  void Mark(Phase phase) {
    if (!on_) return;
    const auto now = std::chrono::steady_clock::now();
    ns_[phase] += std::chrono::duration_cast<std::chrono::nanoseconds>(now - last_).count();
    last_ = now;
  }
  ~PhaseClock() {
    if (!on_) return;
    Profile& p = Profiler();
    std::lock_guard<std::mutex> lock(p.mu);
    ++p.calls;
    for (int i = 0; i < kPhases; ++i) p.ns[i] += ns_[i];
  }

 private:
  bool on_;
  std::chrono::steady_clock::time_point last_;
  int64_t ns_[kPhases] = {};
};

// One stream for every call: oneDNN's CPU stream is stateless between executions, and calls
// are serialized by ExecutionMutex, so creating one per call bought nothing.
dnnl::stream& Stream() {
  static dnnl::stream stream(Engine());
  return stream;
}

bool ToDnnl(ffi::DataType t, dt* out) {
  switch (t) {
    case ffi::DataType::F32:
      *out = dt::f32;
      return true;
    case ffi::DataType::BF16:
      *out = dt::bf16;
      return true;
    default:
      return false;
  }
}

std::string Shape(ffi::Span<const int64_t> d) {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < d.size(); ++i) s << (i ? ", " : "") << d[i];
  s << (d.size() == 1 ? ",)" : ")");
  return s.str();
}

// Row-major strides of `shape`.
dims Contiguous(const dims& shape) {
  dims st(shape.size(), 1);
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i) st[i] = st[i + 1] * shape[i + 1];
  return st;
}

// Everything oneDNN needs about one conv, in its logical order (N, C, spatial...) with the
// strides of XLA's buffers.
struct Geometry {
  dims src, wei, dst;                      // logical dims
  dims src_strides, wei_strides, dst_strides;
  dims stride, dilation, pad_lo, pad_hi;   // dilation in oneDNN's convention (lax's - 1)
  dt src_dt, wei_dt, dst_dt, bias_dt;
  int64_t out_channels;
  bool bias;
  bool transposed;  // a deconvolution (lax: an input-dilated conv), see Python's Geometry
  // Inference only (the Inference handler): forward_inference with these post-ops.
  bool inference = false;
  int64_t activation = 0;  // an Activation below
  bool residual = false;   // a sum post-op: dst holds the residual when the primitive runs
  // Built and run inside an OpenMP parallel region, on one thread's images (the Bottleneck
  // handler): oneDNN then runs it on that thread alone (dnnl_get_current_num_threads() is 1
  // there), so it is kept apart from the primitive of the same shape run on every core.
  bool single_thread = false;

  std::vector<int64_t> Key(Role role) const {
    std::vector<int64_t> k{role,     static_cast<int64_t>(src_dt), static_cast<int64_t>(wei_dt),
                           static_cast<int64_t>(dst_dt), static_cast<int64_t>(bias_dt),
                           bias,     transposed,
                           inference, activation,
                           residual, single_thread};
    for (const dims* v : {&src, &wei, &dst, &src_strides, &wei_strides, &dst_strides, &stride,
                          &dilation, &pad_lo, &pad_hi}) {
      k.push_back(static_cast<int64_t>(v->size()));
      k.insert(k.end(), v->begin(), v->end());
    }
    return k;
  }

  memory::desc SrcDesc() const { return memory::desc(src, src_dt, src_strides); }
  memory::desc DstDesc() const { return memory::desc(dst, dst_dt, dst_strides); }
  memory::desc WeiDesc() const { return memory::desc(wei, wei_dt, wei_strides); }
  memory::desc AnyWei() const { return memory::desc(wei, wei_dt, memory::format_tag::any); }
  memory::desc BiasDesc() const { return memory::desc({out_channels}, bias_dt, dims{1}); }
};

// The activation (x or dx) strides for logical (N, C, spatial...) in XLA's layout.
dims ActivationStrides(ffi::Span<const int64_t> shape, bool channels_last) {
  dims phys(shape.begin(), shape.end());
  dims st = Contiguous(phys);
  const size_t r = shape.size();
  if (!channels_last) return st;                  // (N, C, sp...) is already logical order
  dims logical{st[0], st[r - 1]};                 // N, C
  for (size_t i = 1; i + 1 < r; ++i) logical.push_back(st[i]);
  return logical;
}

dims ActivationDims(ffi::Span<const int64_t> shape, bool channels_last) {
  const size_t r = shape.size();
  if (!channels_last) return dims(shape.begin(), shape.end());
  dims d{shape[0], shape[r - 1]};
  for (size_t i = 1; i + 1 < r; ++i) d.push_back(shape[i]);
  return d;
}

// Kernel HWIO ([k..., I/G, O]) or OIHW ([O, I/G, k...]) as oneDNN's (G, O/G, I/G, k...), or
// (O, I, k...) when G == 1, with the strides of XLA's buffer.
void KernelDesc(ffi::Span<const int64_t> shape, bool channels_last, int64_t groups, dims* d,
                dims* strides) {
  const size_t r = shape.size();
  const size_t nsp = r - 2;
  dims phys(shape.begin(), shape.end());
  dims st = Contiguous(phys);
  int64_t out = channels_last ? shape[r - 1] : shape[0];
  int64_t in = channels_last ? shape[r - 2] : shape[1];
  int64_t so = channels_last ? st[r - 1] : st[0];
  int64_t si = channels_last ? st[r - 2] : st[1];
  size_t sp0 = channels_last ? 0 : 2;
  d->clear();
  strides->clear();
  if (groups > 1) {
    d->insert(d->end(), {groups, out / groups, in});
    strides->insert(strides->end(), {so * (out / groups), so, si});
  } else {
    d->insert(d->end(), {out, in});
    strides->insert(strides->end(), {so, si});
  }
  for (size_t i = 0; i < nsp; ++i) {
    d->push_back(shape[sp0 + i]);
    strides->push_back(st[sp0 + i]);
  }
}

struct Attrs {
  ffi::Span<const int64_t> stride, pad_lo, pad_hi, dilation;
  int64_t groups;
  bool channels_last, transposed;
};

ffi::Error Describe(const Attrs& a, ffi::AnyBuffer::Dimensions x, ffi::DataType xt,
                    ffi::AnyBuffer::Dimensions w, ffi::DataType wt,
                    ffi::AnyBuffer::Dimensions y, ffi::DataType yt, Geometry* g) {
  const size_t nsp = a.stride.size();
  if (nsp < 1 || nsp > 3 || x.size() != nsp + 2 || w.size() != nsp + 2 || y.size() != nsp + 2 ||
      a.pad_lo.size() != nsp || a.pad_hi.size() != nsp || a.dilation.size() != nsp ||
      a.groups < 1) {
    return ffi::Error::InvalidArgument("jaxconv onednn: inconsistent ranks: x " + Shape(x) +
                                       ", w " + Shape(w) + ", y " + Shape(y));
  }
  if (!ToDnnl(xt, &g->src_dt) || !ToDnnl(wt, &g->wei_dt) || !ToDnnl(yt, &g->dst_dt)) {
    return ffi::Error::InvalidArgument("jaxconv onednn: only float32 and bfloat16 buffers");
  }
  g->src = ActivationDims(x, a.channels_last);
  g->src_strides = ActivationStrides(x, a.channels_last);
  g->dst = ActivationDims(y, a.channels_last);
  g->dst_strides = ActivationStrides(y, a.channels_last);
  KernelDesc(w, a.channels_last, a.groups, &g->wei, &g->wei_strides);
  g->out_channels = g->dst[1];
  g->stride.assign(a.stride.begin(), a.stride.end());
  g->pad_lo.assign(a.pad_lo.begin(), a.pad_lo.end());
  g->pad_hi.assign(a.pad_hi.begin(), a.pad_hi.end());
  g->dilation.clear();
  for (int64_t d : a.dilation) g->dilation.push_back(d - 1);
  g->bias_dt = g->dst_dt;
  g->bias = false;
  g->transposed = a.transposed;
  return ffi::Error::Success();
}

std::string Describe(const char* role, ffi::AnyBuffer::Dimensions a, ffi::AnyBuffer::Dimensions b,
                     ffi::AnyBuffer::Dimensions c, const Attrs& at) {
  std::ostringstream s;
  s << "jaxconv onednn " << role << " failed for shapes " << Shape(a) << ", " << Shape(b)
    << " -> " << Shape(c) << " (stride " << Shape(at.stride) << ", padding lo " << Shape(at.pad_lo)
    << " hi " << Shape(at.pad_hi) << ", dilation " << Shape(at.dilation) << ", groups "
    << at.groups << (at.transposed ? ", transposed" : "") << ")";
  return s.str();
}

// Every primitive uses a scratchpad jaxconv provides (Scratchpad below): oneDNN's own global
// one is thread-local to the thread that created the primitive, and XLA runs a primitive from
// whichever of its threads executes the call. No activation post-op: oneDNN 3.2's ReLU
// (max(x, 0) in its jit kernels) turns a NaN into 0, where jax.nn.relu propagates it, so
// Python applies the activation in XLA.
dnnl::primitive_attr Attributes() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// The activation the Inference handler applies as a post-op (Python: inference.ACTIVATIONS).
enum Activation : int64_t { kNone = 0, kRelu = 1 };

// A frozen conv's post-ops: the residual (sum), then the ReLU, both NaN-propagating. oneDNN
// 3.2's eltwise_relu, clip, clip_v2 and binary_max all turn NaN into 0 (max(x, 0) with the
// operands in the order that returns 0); its ELU with alpha = 0 is ReLU that keeps NaN
// (x > 0 ? x : 0·(exp(x) - 1)), giving -0 instead of +0 for a negative x — equal as floats.
// ReLU6 has no exact NaN-keeping form here (min(x, 6) loses NaN like max; 6 - relu(6 - x)
// rounds a small x away), so Python applies it in XLA.
dnnl::primitive_attr InferenceAttributes(const Geometry& g) {
  dnnl::primitive_attr attr = Attributes();
  dnnl::post_ops ops;
  if (g.residual) ops.append_sum(1.f);
  if (g.activation == kRelu) ops.append_eltwise(dnnl::algorithm::eltwise_elu, 0.f, 0.f);
  attr.set_post_ops(ops);
  return attr;
}

// The forward primitive descriptor of a convolution (Fwd = convolution_forward) or a
// deconvolution (Fwd = deconvolution_forward); also the hint for the backward ones.
// (forward_inference was tried for the forward: oneDNN 3.2 picks the same kernels.)
template <typename Fwd>
typename Fwd::primitive_desc ForwardDesc(const Geometry& g, dnnl::algorithm alg) {
  const auto prop =
      g.inference ? dnnl::prop_kind::forward_inference : dnnl::prop_kind::forward_training;
  const auto attr = g.inference ? InferenceAttributes(g) : Attributes();
  if (g.bias) {
    return typename Fwd::primitive_desc(Engine(), prop, alg, g.SrcDesc(), g.AnyWei(),
                                        g.BiasDesc(), g.DstDesc(), g.stride, g.dilation,
                                        g.pad_lo, g.pad_hi, attr);
  }
  return typename Fwd::primitive_desc(Engine(), prop, alg, g.SrcDesc(), g.AnyWei(), g.DstDesc(),
                                      g.stride, g.dilation, g.pad_lo, g.pad_hi, attr);
}

// One cached primitive with the weights layout it wants.
// A frozen conv's memory objects, made at its first call and re-pointed at XLA's buffers on
// every later one (set_data_handle): creating five dnnl::memory objects and the argument map
// took 3.5 of a tiny conv's 10.4 us in the handler. Used only with the execution mutex held.
struct Bound {
  memory src, weights, bias, dst, scratchpad;
  std::unordered_map<int, memory> args;
};

struct Entry {
  dnnl::primitive prim;
  memory::desc weights;     // the primitive's (diff_)weights layout
  memory::desc scratchpad;  // the temporary memory it needs
  int64_t fingerprint = 0;  // of `weights` (Fingerprint below)
  mutable std::unique_ptr<Bound> bound = nullptr;  // the Inference handler's (Bound)
};

// A hash (FNV-1a, never 0) of everything that decides a weights layout's bytes: data type,
// dims, padded dims, strides and inner blocks. Weights packed for one layout are used by a
// primitive only when its layout has the same fingerprint; the oneDNN version is mixed in, so
// a packing saved by another build never matches.
int64_t Fingerprint(const memory::desc& d) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](int64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= static_cast<uint64_t>(v >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
  };
  const dnnl_version_t* v = dnnl_version();
  mix(v->major);
  mix(v->minor);
  mix(v->patch);
  mix(static_cast<int64_t>(d.get_format_kind()));
  mix(static_cast<int64_t>(d.get_data_type()));
  mix(static_cast<int64_t>(d.get_size()));
  for (const dims& part : {d.get_dims(), d.get_padded_dims(), d.get_padded_offsets(),
                           d.get_strides(), d.get_inner_blks(), d.get_inner_idxs()}) {
    mix(static_cast<int64_t>(part.size()));
    for (int64_t x : part) mix(x);
  }
  const int64_t r = static_cast<int64_t>(h & 0x7fffffffffffffffull);
  return r == 0 ? 1 : r;
}

// One scratchpad for every primitive, grown to the largest asked for: executions are
// serialized by ExecutionMutex(), so one buffer suffices. A buffer over kRetainedScratchpad is
// released after the call that needed it (ReleaseLargeScratchpad), so what stays allocated
// between calls is bounded. Call both with the execution mutex held.
constexpr size_t kRetainedScratchpad = size_t{64} << 20;

// A 64-byte aligned host buffer that grows on demand (its old contents are not kept).
struct Buffer {
  std::unique_ptr<char, decltype(&std::free)> data{nullptr, &std::free};
  size_t capacity = 0;

  void* Grow(size_t need) {
    if (need > capacity) {
      const size_t bytes = (need + 63) / 64 * 64;
      data.reset();  // free the old one first: peak memory is the new size, not both
      capacity = 0;
      data.reset(static_cast<char*>(std::aligned_alloc(64, bytes)));
      if (!data) throw std::bad_alloc();
      capacity = bytes;
    }
    return data.get();
  }

  void ReleaseIfOver(size_t bytes) {
    if (capacity > bytes) {
      data.reset();
      capacity = 0;
    }
  }
};

Buffer& ScratchpadState() {
  static Buffer state;
  return state;
}

// The scratchpad's buffer, grown to at least `desc`'s size.
void* ScratchpadData(const memory::desc& desc) { return ScratchpadState().Grow(desc.get_size()); }

memory Scratchpad(const memory::desc& desc) {
  return memory(desc, Engine(), ScratchpadData(desc));
}

void ReleaseLargeScratchpad() { ScratchpadState().ReleaseIfOver(kRetainedScratchpad); }

// The OpenMP thread count on the thread that builds each primitive. oneDNN sizes some kernels'
// work split by it when the primitive is created (dnnl_get_max_threads(), omp_get_max_threads()
// there; brdgmm's depthwise kernels among them) and keeps it for the primitive's life. Primitives
// are built on the XLA thread that runs the call, outside any parallel region, except the
// bottleneck's per-thread ones (inside its region, where each runs on its thread alone).
struct BuildThreads {
  std::mutex mu;
  int64_t builds = 0, fewest = 0, most = 0, in_parallel = 0;
};

BuildThreads& Builds() {
  static BuildThreads b;
  return b;
}

void NoteBuild() {
  const int64_t n = omp_get_max_threads();
  const bool nested = omp_in_parallel() != 0;
  BuildThreads& b = Builds();
  std::lock_guard<std::mutex> lock(b.mu);
  b.fewest = b.builds == 0 ? n : std::min(b.fewest, n);
  b.most = b.builds == 0 ? n : std::max(b.most, n);
  ++b.builds;
  b.in_parallel += nested ? 1 : 0;
}

template <typename Fwd, typename BwdData, typename BwdWeights>
Entry Build(Role role, const Geometry& g, dnnl::algorithm alg) {
  NoteBuild();
  if (role == kForward) {
    auto pd = ForwardDesc<Fwd>(g, alg);
    return Entry{Fwd(pd), pd.weights_desc(), pd.scratchpad_desc(), Fingerprint(pd.weights_desc())};
  }
  // The hint: the forward these gradients belong to (without bias or post-ops).
  Geometry plain = g;
  plain.bias = false;
  plain.inference = false;
  plain.activation = kNone;
  plain.residual = false;
  auto hint = ForwardDesc<Fwd>(plain, alg);
  if (role == kBackwardData) {
    typename BwdData::primitive_desc pd(Engine(), alg, g.SrcDesc(), g.AnyWei(), g.DstDesc(),
                                        g.stride, g.dilation, g.pad_lo, g.pad_hi, hint,
                                        Attributes());
    return Entry{BwdData(pd), pd.weights_desc(), pd.scratchpad_desc()};
  }
  typename BwdWeights::primitive_desc pd(Engine(), alg, g.SrcDesc(), g.AnyWei(), g.DstDesc(),
                                         g.stride, g.dilation, g.pad_lo, g.pad_hi, hint,
                                         Attributes());
  return Entry{BwdWeights(pd), pd.diff_weights_desc(), pd.scratchpad_desc()};
}

// XLA's weights (data) in the layout the primitive wants: reordered when it differs.
memory Weights(const Entry& e, const Geometry& g, void* data, dnnl::stream& s) {
  memory user(g.WeiDesc(), Engine(), data);
  if (e.weights == user.get_desc()) return user;
  memory wei(e.weights, Engine());
  dnnl::reorder(user, wei).execute(s, user, wei);
  return wei;
}

// The primitive cache: least recently used first out, at most `capacity` entries (oneDNN's
// own primitive cache holds 1024 by default; so does this one). JAXCONV_ONEDNN_CACHE_CAPACITY
// sets it at load, jaxconv_onednn_set_cache_capacity at any time. Entries are shared_ptrs: a
// caller keeps its primitive alive while it runs, whatever is evicted meanwhile.
using Key = std::vector<int64_t>;

struct Cache {
  std::mutex mu;
  size_t capacity = 1024;
  std::list<Key> order;  // most recently used first
  std::map<Key, std::pair<std::shared_ptr<const Entry>, std::list<Key>::iterator>> entries;

  Cache() {
    if (const char* env = std::getenv("JAXCONV_ONEDNN_CACHE_CAPACITY")) {
      char* end = nullptr;
      const long long n = std::strtoll(env, &end, 10);
      if (end != env && *end == '\0' && n >= 1) capacity = static_cast<size_t>(n);
    }
  }

  // Call with mu held.
  void Trim() {
    while (entries.size() > capacity) {
      entries.erase(order.back());
      order.pop_back();
    }
  }
};

Cache& PrimitiveCache() {
  static Cache cache;
  return cache;
}

// The cached primitive for `key`, made by `build` on a miss. Built outside the cache's lock
// (building a jit kernel takes milliseconds); two threads that miss on the same key both build,
// and the second insert keeps the first's.
template <typename BuildFn>
std::shared_ptr<const Entry> Cached(Key key, BuildFn build) {
  Cache& cache = PrimitiveCache();
  {
    std::lock_guard<std::mutex> lock(cache.mu);
    auto it = cache.entries.find(key);
    if (it != cache.entries.end()) {
      cache.order.splice(cache.order.begin(), cache.order, it->second.second);
      return it->second.first;
    }
  }
  auto e = std::make_shared<const Entry>(build());
  std::lock_guard<std::mutex> lock(cache.mu);
  auto it = cache.entries.find(key);
  if (it != cache.entries.end()) return it->second.first;
  cache.order.push_front(key);
  cache.entries.emplace(std::move(key), std::make_pair(e, cache.order.begin()));
  cache.Trim();
  return e;
}

std::shared_ptr<const Entry> Lookup(Role role, const Geometry& g) {
  return Cached(g.Key(role), [&] {
    return g.transposed ? Build<dnnl::deconvolution_forward, dnnl::deconvolution_backward_data,
                                dnnl::deconvolution_backward_weights>(
                              role, g, dnnl::algorithm::deconvolution_direct)
                        : Build<dnnl::convolution_forward, dnnl::convolution_backward_data,
                                dnnl::convolution_backward_weights>(
                              role, g, dnnl::algorithm::convolution_direct);
  });
}

Attrs MakeAttrs(ffi::Span<const int64_t> stride, ffi::Span<const int64_t> pad_lo,
                ffi::Span<const int64_t> pad_hi, ffi::Span<const int64_t> dilation,
                int64_t groups, int64_t channels_last, int64_t transposed) {
  return Attrs{stride, pad_lo, pad_hi, dilation, groups, channels_last != 0, transposed != 0};
}

ffi::Error ForwardImpl(ffi::AnyBuffer x, ffi::AnyBuffer w, ffi::RemainingArgs rest,
                       ffi::Result<ffi::AnyBuffer> y, ffi::Span<const int64_t> stride,
                       ffi::Span<const int64_t> pad_lo, ffi::Span<const int64_t> pad_hi,
                       ffi::Span<const int64_t> dilation, int64_t groups, int64_t channels_last,
                       int64_t transposed) {
  PhaseClock clock;
  Attrs a = MakeAttrs(stride, pad_lo, pad_hi, dilation, groups, channels_last, transposed);
  Geometry g;
  if (auto err = Describe(a, x.dimensions(), x.element_type(), w.dimensions(), w.element_type(),
                          y->dimensions(), y->element_type(), &g);
      !err.success()) {
    return err;
  }
  void* bias_data = nullptr;
  if (rest.size() > 0) {
    auto b = rest.get<ffi::AnyBuffer>(0);
    if (!b.has_value()) return b.error();
    if (b->dimensions().size() != 1 || b->dimensions()[0] != g.out_channels ||
        !ToDnnl(b->element_type(), &g.bias_dt)) {
      return ffi::Error::InvalidArgument("jaxconv onednn: bias must be [C_out] f32/bf16, got " +
                                         Shape(b->dimensions()));
    }
    g.bias = true;
    bias_data = b->untyped_data();
  }
  clock.Mark(kDescribe);
  try {
    const auto e = Lookup(kForward, g);
    clock.Mark(kLookup);
    std::lock_guard<std::mutex> lock(ExecutionMutex());
    clock.Mark(kLock);
    dnnl::stream& s = Stream();
    memory src(g.SrcDesc(), Engine(), x.untyped_data());
    memory dst(g.DstDesc(), Engine(), y->untyped_data());
    memory wei = Weights(*e, g, w.untyped_data(), s);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src},
                                         {DNNL_ARG_WEIGHTS, wei},
                                         {DNNL_ARG_DST, dst},
                                         {DNNL_ARG_SCRATCHPAD, Scratchpad(e->scratchpad)}};
    if (g.bias) args.emplace(DNNL_ARG_BIAS, memory(g.BiasDesc(), Engine(), bias_data));
    clock.Mark(kSetup);
    e->prim.execute(s, args);
    clock.Mark(kExecute);
    s.wait();
    ReleaseLargeScratchpad();
    clock.Mark(kWait);
  } catch (const std::exception& ex) {
    return ffi::Error::Internal(Describe("forward", x.dimensions(), w.dimensions(),
                                         y->dimensions(), a) + ": " + ex.what());
  }
  return ffi::Error::Success();
}

ffi::Error BackwardDataImpl(ffi::AnyBuffer dy, ffi::AnyBuffer w, ffi::Result<ffi::AnyBuffer> dx,
                            ffi::Span<const int64_t> stride, ffi::Span<const int64_t> pad_lo,
                            ffi::Span<const int64_t> pad_hi, ffi::Span<const int64_t> dilation,
                            int64_t groups, int64_t channels_last, int64_t transposed) {
  Attrs a = MakeAttrs(stride, pad_lo, pad_hi, dilation, groups, channels_last, transposed);
  Geometry g;
  if (auto err = Describe(a, dx->dimensions(), dx->element_type(), w.dimensions(),
                          w.element_type(), dy.dimensions(), dy.element_type(), &g);
      !err.success()) {
    return err;
  }
  try {
    const auto e = Lookup(kBackwardData, g);
    std::lock_guard<std::mutex> lock(ExecutionMutex());
    dnnl::stream& s = Stream();
    memory diff_dst(g.DstDesc(), Engine(), dy.untyped_data());
    memory diff_src(g.SrcDesc(), Engine(), dx->untyped_data());
    memory wei = Weights(*e, g, w.untyped_data(), s);
    e->prim.execute(s, {{DNNL_ARG_DIFF_DST, diff_dst},
                        {DNNL_ARG_WEIGHTS, wei},
                        {DNNL_ARG_DIFF_SRC, diff_src},
                        {DNNL_ARG_SCRATCHPAD, Scratchpad(e->scratchpad)}});
    s.wait();
    ReleaseLargeScratchpad();
  } catch (const std::exception& ex) {
    return ffi::Error::Internal(Describe("input gradient", dy.dimensions(), w.dimensions(),
                                         dx->dimensions(), a) + ": " + ex.what());
  }
  return ffi::Error::Success();
}

ffi::Error BackwardWeightsImpl(ffi::AnyBuffer x, ffi::AnyBuffer dy,
                               ffi::Result<ffi::AnyBuffer> dw, ffi::Span<const int64_t> stride,
                               ffi::Span<const int64_t> pad_lo, ffi::Span<const int64_t> pad_hi,
                               ffi::Span<const int64_t> dilation, int64_t groups,
                               int64_t channels_last, int64_t transposed) {
  Attrs a = MakeAttrs(stride, pad_lo, pad_hi, dilation, groups, channels_last, transposed);
  Geometry g;
  if (auto err = Describe(a, x.dimensions(), x.element_type(), dw->dimensions(),
                          dw->element_type(), dy.dimensions(), dy.element_type(), &g);
      !err.success()) {
    return err;
  }
  try {
    const auto e = Lookup(kBackwardWeights, g);
    std::lock_guard<std::mutex> lock(ExecutionMutex());
    dnnl::stream& s = Stream();
    memory src(g.SrcDesc(), Engine(), x.untyped_data());
    memory diff_dst(g.DstDesc(), Engine(), dy.untyped_data());
    memory user_dw(g.WeiDesc(), Engine(), dw->untyped_data());
    memory diff_w = user_dw;
    const bool reorder = e->weights != user_dw.get_desc();
    if (reorder) diff_w = memory(e->weights, Engine());
    e->prim.execute(s, {{DNNL_ARG_SRC, src},
                        {DNNL_ARG_DIFF_DST, diff_dst},
                        {DNNL_ARG_DIFF_WEIGHTS, diff_w},
                        {DNNL_ARG_SCRATCHPAD, Scratchpad(e->scratchpad)}});
    if (reorder) dnnl::reorder(diff_w, user_dw).execute(s, diff_w, user_dw);
    s.wait();
    ReleaseLargeScratchpad();
  } catch (const std::exception& ex) {
    return ffi::Error::Internal(Describe("weight gradient", x.dimensions(), dy.dimensions(),
                                         dw->dimensions(), a) + ": " + ex.what());
  }
  return ffi::Error::Success();
}

// A frozen conv: y = act(conv(x, w) + b (+ residual)) with packed weights. `packed` holds the
// weights in the layout whose fingerprint is `packed_format` (0: nothing packed); when the
// primitive wants another layout (another CPU, or a batch size whose kernel blocks weights
// differently) the plain `w` is reordered instead, as the training forward does on every call.
// With `residual`, the last operand is the residual and XLA aliases it to `y`
// (input_output_aliases), so the sum post-op finds it in the output buffer.
ffi::Error InferenceImpl(ffi::AnyBuffer x, ffi::AnyBuffer w, ffi::AnyBuffer b,
                         ffi::AnyBuffer packed, ffi::RemainingArgs rest,
                         ffi::Result<ffi::AnyBuffer> y, ffi::Span<const int64_t> stride,
                         ffi::Span<const int64_t> pad_lo, ffi::Span<const int64_t> pad_hi,
                         ffi::Span<const int64_t> dilation, int64_t groups, int64_t channels_last,
                         int64_t transposed, int64_t activation, int64_t residual,
                         int64_t packed_format) {
  PhaseClock clock;
  Attrs a = MakeAttrs(stride, pad_lo, pad_hi, dilation, groups, channels_last, transposed);
  Geometry g;
  if (auto err = Describe(a, x.dimensions(), x.element_type(), w.dimensions(), w.element_type(),
                          y->dimensions(), y->element_type(), &g);
      !err.success()) {
    return err;
  }
  if (b.dimensions().size() != 1 || b.dimensions()[0] != g.out_channels ||
      !ToDnnl(b.element_type(), &g.bias_dt)) {
    return ffi::Error::InvalidArgument("jaxconv onednn: bias must be [C_out] f32/bf16, got " +
                                       Shape(b.dimensions()));
  }
  if (activation < kNone || activation > kRelu) {
    return ffi::Error::InvalidArgument("jaxconv onednn: unknown activation code");
  }
  g.bias = true;
  g.inference = true;
  g.activation = activation;
  g.residual = residual != 0;
  if (g.residual) {
    if (rest.size() != 1) return ffi::Error::InvalidArgument("jaxconv onednn: no residual");
    auto r = rest.get<ffi::AnyBuffer>(0);
    if (!r.has_value()) return r.error();
    if (r->element_type() != y->element_type() || !(r->dimensions() == y->dimensions())) {
      return ffi::Error::InvalidArgument("jaxconv onednn: the residual must match the output");
    }
    if (r->untyped_data() != y->untyped_data()) {  // not aliased: copy it in
      std::memcpy(y->untyped_data(), r->untyped_data(), y->size_bytes());
    }
  }
  clock.Mark(kDescribe);
  try {
    const auto e = Lookup(kForward, g);
    clock.Mark(kLookup);
    std::lock_guard<std::mutex> lock(ExecutionMutex());
    clock.Mark(kLock);
    dnnl::stream& s = Stream();
    const bool fits = packed_format != 0 && packed_format == e->fingerprint &&
                      packed.size_bytes() == e->weights.get_size();
    if (!e->bound) {
      auto* m = new Bound{memory(g.SrcDesc(), Engine(), nullptr),
                          memory(e->weights, Engine(), nullptr),
                          memory(g.BiasDesc(), Engine(), nullptr),
                          memory(g.DstDesc(), Engine(), nullptr),
                          memory(e->scratchpad, Engine(), nullptr),
                          {}};
      m->args = {{DNNL_ARG_SRC, m->src},
                 {DNNL_ARG_WEIGHTS, m->weights},
                 {DNNL_ARG_BIAS, m->bias},
                 {DNNL_ARG_DST, m->dst},
                 {DNNL_ARG_SCRATCHPAD, m->scratchpad}};
      e->bound.reset(m);
    }
    Bound& m = *e->bound;
    m.src.set_data_handle(x.untyped_data());
    m.dst.set_data_handle(y->untyped_data());
    m.bias.set_data_handle(b.untyped_data());
    m.scratchpad.set_data_handle(ScratchpadData(e->scratchpad));
    memory reordered;  // the plain weights in the primitive's layout, when not packed for it
    if (fits) {
      m.weights.set_data_handle(packed.untyped_data());
    } else {
      reordered = Weights(*e, g, w.untyped_data(), s);
      m.weights.set_data_handle(reordered.get_data_handle());
    }
    clock.Mark(kSetup);
    e->prim.execute(s, m.args);
    clock.Mark(kExecute);
    s.wait();
    ReleaseLargeScratchpad();
    clock.Mark(kWait);
  } catch (const std::exception& ex) {
    return ffi::Error::Internal(Describe("frozen forward", x.dimensions(), w.dimensions(),
                                         y->dimensions(), a) + ": " + ex.what());
  }
  return ffi::Error::Success();
}

// The seed's bottleneck in one call: y = out_act(conv(act(conv1x1(x, w_r) + b_r), w_s) + b_s),
// the attributes describing the k×k conv (Python: lowerings/onednn/block.py). With at least
// kImagesPerThread images per OpenMP thread, each thread takes whole images and runs the
// reduce and then the k×k conv on one image at a time, on primitives built and run inside the
// parallel region (each on its thread alone), with its own intermediate (one image's, in the
// input's layout: it stays in the core's cache) and scratchpad; one thread's reduce streams its
// input from memory while another's k×k computes. With fewer images (where splitting them
// would leave cores idle) it runs the two primitives on the whole batch, each on every core.
// Each ReLU (act, out_act) is the NaN-keeping ELU(0) post-op, as in a frozen conv.
constexpr int64_t kImagesPerThread = 2;

struct BlockGeometry {
  Geometry reduce, spatial;
};

// The two convs' geometries for `batch` images of the call's shapes.
ffi::Error DescribeBlock(int64_t batch, const Attrs& spatial, ffi::AnyBuffer::Dimensions x,
                         ffi::DataType xt, ffi::AnyBuffer w_r, ffi::AnyBuffer b_r,
                         ffi::AnyBuffer w_s, ffi::AnyBuffer b_s, ffi::AnyBuffer::Dimensions y,
                         ffi::DataType yt, int64_t activation, int64_t out_activation,
                         BlockGeometry* g) {
  const size_t nsp = spatial.stride.size();
  const size_t r = nsp + 2;
  if (nsp < 1 || nsp > 3 || x.size() != r || y.size() != r || w_r.dimensions().size() != r) {
    return ffi::Error::InvalidArgument("jaxconv onednn: inconsistent bottleneck ranks");
  }
  const std::vector<int64_t> ones(nsp, 1), zeros(nsp, 0);
  const ffi::Span<const int64_t> one(ones.data(), nsp), zero(zeros.data(), nsp);
  const Attrs reduce{one, zero, zero, one, 1, spatial.channels_last, false};
  const size_t c = spatial.channels_last ? r - 1 : 1;
  dims xs(x.begin(), x.end()), ys(y.begin(), y.end()), hs = xs;
  hs[c] = spatial.channels_last ? w_r.dimensions()[r - 1] : w_r.dimensions()[0];
  xs[0] = ys[0] = hs[0] = batch;
  const ffi::Span<const int64_t> xv(xs.data(), r), hv(hs.data(), r), yv(ys.data(), r);
  if (auto err = Describe(reduce, xv, xt, w_r.dimensions(), w_r.element_type(), hv, yt,
                          &g->reduce);
      !err.success()) {
    return err;
  }
  if (auto err = Describe(spatial, hv, yt, w_s.dimensions(), w_s.element_type(), yv, yt,
                          &g->spatial);
      !err.success()) {
    return err;
  }
  for (auto [geometry, bias] : {std::pair{&g->reduce, &b_r}, std::pair{&g->spatial, &b_s}}) {
    if (bias->dimensions().size() != 1 || bias->dimensions()[0] != geometry->out_channels ||
        !ToDnnl(bias->element_type(), &geometry->bias_dt)) {
      return ffi::Error::InvalidArgument("jaxconv onednn: bias must be [C_out] f32/bf16, got " +
                                         Shape(bias->dimensions()));
    }
    geometry->bias = true;
    geometry->inference = true;
  }
  g->reduce.activation = activation;
  g->spatial.activation = out_activation;
  return ffi::Error::Success();
}

// Per OpenMP thread: its intermediate and its scratchpad (2t and 2t + 1); and the whole
// batch's intermediate. Used with the execution mutex held.
std::vector<Buffer>& ThreadBuffers() {
  static std::vector<Buffer> buffers;
  return buffers;
}

Buffer& BatchIntermediate() {
  static Buffer buffer;
  return buffer;
}

// The arguments of one of the bottleneck's convs (bias, no residual); `pad` its scratchpad.
std::unordered_map<int, memory> ConvArgs(const Entry& e, const Geometry& g, const memory& src,
                                         const memory& weights, void* bias, const memory& dst,
                                         void* pad) {
  return {{DNNL_ARG_SRC, src},
          {DNNL_ARG_WEIGHTS, weights},
          {DNNL_ARG_BIAS, memory(g.BiasDesc(), Engine(), bias)},
          {DNNL_ARG_DST, dst},
          {DNNL_ARG_SCRATCHPAD, memory(e.scratchpad, Engine(), pad)}};
}

ffi::Error BottleneckImpl(ffi::AnyBuffer x, ffi::AnyBuffer w_r, ffi::AnyBuffer b_r,
                          ffi::AnyBuffer w_s, ffi::AnyBuffer b_s, ffi::Result<ffi::AnyBuffer> y,
                          ffi::Span<const int64_t> stride, ffi::Span<const int64_t> pad_lo,
                          ffi::Span<const int64_t> pad_hi, ffi::Span<const int64_t> dilation,
                          int64_t groups, int64_t channels_last, int64_t transposed,
                          int64_t activation, int64_t out_activation) {
  PhaseClock clock;
  Attrs a = MakeAttrs(stride, pad_lo, pad_hi, dilation, groups, channels_last, transposed);
  for (int64_t code : {activation, out_activation}) {
    if (code < kNone || code > kRelu) {
      return ffi::Error::InvalidArgument("jaxconv onednn: unknown activation code");
    }
  }
  const int64_t n = x.dimensions().size() == 0 ? 0 : x.dimensions()[0];
  const int threads = omp_get_max_threads();
  const bool split = threads > 1 && n >= kImagesPerThread * threads;
  BlockGeometry g;
  if (auto err = DescribeBlock(split ? 1 : n, a, x.dimensions(), x.element_type(), w_r, b_r, w_s,
                               b_s, y->dimensions(), y->element_type(), activation,
                               out_activation, &g);
      !err.success()) {
    return err;
  }
  g.reduce.single_thread = g.spatial.single_thread = split;
  clock.Mark(kDescribe);
  std::string failure;
  try {
    std::lock_guard<std::mutex> lock(ExecutionMutex());
    clock.Mark(kLock);
    auto* xp = static_cast<char*>(x.untyped_data());
    auto* yp = static_cast<char*>(y->untyped_data());
    if (!split) {
      const auto er = Lookup(kForward, g.reduce);
      const auto es = Lookup(kForward, g.spatial);
      clock.Mark(kLookup);
      dnnl::stream& s = Stream();
      Buffer& h = BatchIntermediate();
      memory hm(g.reduce.DstDesc(), Engine(), h.Grow(g.reduce.DstDesc().get_size()));
      void* pad = ScratchpadState().Grow(
          std::max(er->scratchpad.get_size(), es->scratchpad.get_size()));
      clock.Mark(kSetup);
      er->prim.execute(s, ConvArgs(*er, g.reduce, memory(g.reduce.SrcDesc(), Engine(), xp),
                                   Weights(*er, g.reduce, w_r.untyped_data(), s),
                                   b_r.untyped_data(), hm, pad));
      es->prim.execute(s, ConvArgs(*es, g.spatial, hm,
                                   Weights(*es, g.spatial, w_s.untyped_data(), s),
                                   b_s.untyped_data(),
                                   memory(g.spatial.DstDesc(), Engine(), yp), pad));
      clock.Mark(kExecute);
      s.wait();
      h.ReleaseIfOver(kRetainedScratchpad);
      ReleaseLargeScratchpad();
      clock.Mark(kWait);
      return ffi::Error::Success();
    }
    std::vector<Buffer>& buffers = ThreadBuffers();
    if (buffers.size() < 2 * static_cast<size_t>(threads)) buffers.resize(2 * threads);
    const size_t x_image = x.size_bytes() / n, y_image = y->size_bytes() / n;
    std::shared_ptr<const Entry> er, es;
    memory wr, ws;
#pragma omp parallel num_threads(threads)
    {
#pragma omp single
      {
        try {  // built inside the region, where each runs on its calling thread alone
          er = Lookup(kForward, g.reduce);
          es = Lookup(kForward, g.spatial);
          clock.Mark(kLookup);
          dnnl::stream s(Engine());
          wr = Weights(*er, g.reduce, w_r.untyped_data(), s);
          ws = Weights(*es, g.spatial, w_s.untyped_data(), s);
          s.wait();
          for (int t = 0; t < threads; ++t) {  // grown here: Grow allocates
            buffers[2 * t].Grow(g.reduce.DstDesc().get_size());
            buffers[2 * t + 1].Grow(
                std::max(er->scratchpad.get_size(), es->scratchpad.get_size()));
          }
        } catch (const std::exception& ex) {
          failure = ex.what();
        }
      }  // (an implicit barrier)
      // No exception may leave the region (it would abort the process): each thread records
      // its failure and stops running images; every thread still meets the loop's worksharing.
      const bool built = failure.empty();
#pragma omp barrier  // every thread has read `failure` before any may write it below
      if (built) {
        const int t = omp_get_thread_num();
        bool ready = true;
        dnnl::stream s;
        memory src, dst;
        std::unordered_map<int, memory> reduce_args, spatial_args;
        try {
          void* pad = buffers[2 * t + 1].data.get();
          s = dnnl::stream(Engine());
          src = memory(g.reduce.SrcDesc(), Engine(), nullptr);
          dst = memory(g.spatial.DstDesc(), Engine(), nullptr);
          memory h(g.reduce.DstDesc(), Engine(), buffers[2 * t].data.get());
          reduce_args = ConvArgs(*er, g.reduce, src, wr, b_r.untyped_data(), h, pad);
          spatial_args = ConvArgs(*es, g.spatial, h, ws, b_s.untyped_data(), dst, pad);
        } catch (const std::exception& ex) {
          ready = false;
#pragma omp critical(jaxconv_bottleneck_failure)
          failure = ex.what();
        }
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; ++i) {
          if (!ready) continue;
          try {
            src.set_data_handle(xp + i * x_image);
            dst.set_data_handle(yp + i * y_image);
            er->prim.execute(s, reduce_args);
            es->prim.execute(s, spatial_args);
            s.wait();
          } catch (const std::exception& ex) {
            ready = false;
#pragma omp critical(jaxconv_bottleneck_failure)
            failure = ex.what();
          }
        }
      }
    }
    clock.Mark(kExecute);
    for (Buffer& b : buffers) b.ReleaseIfOver(kRetainedScratchpad);
    clock.Mark(kWait);
  } catch (const std::exception& ex) {
    failure = ex.what();
  }
  if (!failure.empty()) {
    return ffi::Error::Internal(Describe("bottleneck", x.dimensions(), w_s.dimensions(),
                                         y->dimensions(), a) + ": " + failure);
  }
  return ffi::Error::Success();
}

// A frozen conv's geometry from Python's flat description (inference.py, _flat): nsp, then
// the x, w and y shapes (nsp + 2 each), stride, pad_lo, pad_hi, dilation (nsp each), then
// groups, channels_last, transposed, the x, w, y and bias dtypes (0 float32, 1 bfloat16),
// activation and residual.
bool FromFlat(const int64_t* f, int64_t n, Geometry* g, std::string* why) {
  if (n < 1 || f[0] < 1 || f[0] > 3 || n != 1 + 3 * (f[0] + 2) + 4 * f[0] + 9) {
    *why = "jaxconv onednn: malformed geometry";
    return false;
  }
  const size_t nsp = static_cast<size_t>(f[0]), r = nsp + 2;
  const int64_t* p = f + 1;
  ffi::Span<const int64_t> xs(p, r), ws(p + r, r), ys(p + 2 * r, r);
  p += 3 * r;
  ffi::Span<const int64_t> st(p, nsp), lo(p + nsp, nsp), hi(p + 2 * nsp, nsp),
      dl(p + 3 * nsp, nsp);
  p += 4 * nsp;
  const ffi::DataType types[] = {ffi::DataType::F32, ffi::DataType::BF16};
  for (int i = 3; i < 7; ++i) {
    if (p[i] != 0 && p[i] != 1) {
      *why = "jaxconv onednn: unknown dtype code";
      return false;
    }
  }
  Attrs a = MakeAttrs(st, lo, hi, dl, p[0], p[1], p[2]);
  auto err = Describe(a, xs, types[p[3]], ws, types[p[4]], ys, types[p[5]], g);
  if (!err.success()) {
    *why = "jaxconv onednn: invalid geometry";
    return false;
  }
  ToDnnl(types[p[6]], &g->bias_dt);
  g->bias = true;
  g->inference = true;
  g->activation = p[7];
  g->residual = p[8] != 0;
  return true;
}

int Report(const std::string& why, char* err, int64_t errlen) {
  if (err != nullptr && errlen > 0) {
    const size_t n = std::min(why.size(), static_cast<size_t>(errlen - 1));
    std::memcpy(err, why.data(), n);
    err[n] = '\0';
  }
  return 1;
}

// --- Batch normalization in training: the sixth and seventh handlers -----------------------
//
// y = act(scale · (x − mean) / sqrt(var + eps) + shift), the mean and (biased) variance taken
// over every axis but the last (channels last, rank 2 to 5) and returned, and its backward
// (dx, dscale, dshift from dy). The ReLU is oneDNN's fuse_norm_relu: the forward records in a
// workspace which outputs were positive, and the backward reads it (Python: norm.py asks
// jaxconv_onednn_norm_workspace for its size). oneDNN's fused ReLU maps a NaN to 0 where lax's
// keeps it; a NaN output can only come from a channel whose mean, variance, scale or shift is
// NaN (a NaN or an infinity in x makes the mean or the variance NaN), so the forward fills
// those channels with NaN afterwards. Python sends only float32 and non-empty x here.
enum NormRole : int64_t { kNormForward = 10, kNormBackward = 11 };

struct NormGeometry {
  dims d, strides;  // logical (N, C, spatial...) and XLA's strides
  float epsilon = 0;
  bool relu = false;

  Key MakeKey(int64_t role) const {
    int32_t bits;
    std::memcpy(&bits, &epsilon, sizeof bits);
    Key k{role, bits, relu, static_cast<int64_t>(d.size())};
    k.insert(k.end(), d.begin(), d.end());
    return k;
  }
  memory::desc Desc() const { return memory::desc(d, dt::f32, strides); }
  int64_t Channels() const { return d[1]; }
  dnnl::normalization_flags Flags() const {
    auto f = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
    return relu ? f | dnnl::normalization_flags::fuse_norm_relu : f;
  }
};

bool DescribeNorm(ffi::Span<const int64_t> shape, float epsilon, int64_t relu, NormGeometry* g,
                  std::string* why) {
  if (shape.size() < 2 || shape.size() > 5) {
    *why = "jaxconv onednn: batch norm needs rank 2 to 5, got " + Shape(shape);
    return false;
  }
  for (int64_t v : shape) {
    if (v < 1) {
      *why = "jaxconv onednn: batch norm needs a non-empty x, got " + Shape(shape);
      return false;
    }
  }
  g->d = ActivationDims(shape, true);
  g->strides = ActivationStrides(shape, true);
  g->epsilon = epsilon;
  g->relu = relu != 0;
  return true;
}

dnnl::batch_normalization_forward::primitive_desc NormForwardDesc(const NormGeometry& g) {
  return dnnl::batch_normalization_forward::primitive_desc(
      Engine(), dnnl::prop_kind::forward_training, g.Desc(), g.Desc(), g.epsilon, g.Flags(),
      Attributes());
}

// The cached forward or backward primitive; Entry::weights holds the forward's workspace.
std::shared_ptr<const Entry> LookupNorm(NormRole role, const NormGeometry& g) {
  return Cached(g.MakeKey(role), [&] {
    NoteBuild();
    auto fwd = NormForwardDesc(g);
    if (role == kNormForward) {
      return Entry{dnnl::batch_normalization_forward(fwd), fwd.workspace_desc(),
                   fwd.scratchpad_desc()};
    }
    dnnl::batch_normalization_backward::primitive_desc pd(
        Engine(), dnnl::prop_kind::backward, g.Desc(), g.Desc(), g.Desc(), g.epsilon,
        g.Flags(), fwd, Attributes());
    return Entry{dnnl::batch_normalization_backward(pd), fwd.workspace_desc(),
                 pd.scratchpad_desc()};
  });
}

// Checks one per-channel buffer ([C] float32).
ffi::Error ChannelVector(const char* name, ffi::AnyBuffer::Dimensions d, ffi::DataType t,
                         int64_t channels) {
  if (d.size() != 1 || d[0] != channels || t != ffi::DataType::F32) {
    return ffi::Error::InvalidArgument(std::string("jaxconv onednn: batch norm's ") + name +
                                       " must be [C] float32, got " + Shape(d));
  }
  return ffi::Error::Success();
}

ffi::Error NormCheck(ffi::AnyBuffer x, float epsilon, int64_t relu, NormGeometry* g,
                     std::initializer_list<std::pair<const char*, const ffi::AnyBuffer*>> vecs,
                     std::initializer_list<std::pair<const char*, const ffi::AnyBuffer*>> likes) {
  std::string why;
  if (x.element_type() != ffi::DataType::F32) {
    return ffi::Error::InvalidArgument("jaxconv onednn: batch norm needs float32");
  }
  if (!DescribeNorm(x.dimensions(), epsilon, relu, g, &why)) {
    return ffi::Error::InvalidArgument(why);
  }
  for (const auto& [name, b] : vecs) {
    if (auto err = ChannelVector(name, b->dimensions(), b->element_type(), g->Channels());
        !err.success()) {
      return err;
    }
  }
  for (const auto& [name, b] : likes) {
    if (b->element_type() != ffi::DataType::F32 || !(b->dimensions() == x.dimensions())) {
      return ffi::Error::InvalidArgument(std::string("jaxconv onednn: batch norm's ") + name +
                                         " must match x, got " + Shape(b->dimensions()));
    }
  }
  return ffi::Error::Success();
}

void* Data(const ffi::AnyBuffer& b) { return b.untyped_data(); }

ffi::Error BatchNormForwardImpl(ffi::AnyBuffer x, ffi::AnyBuffer scale, ffi::AnyBuffer shift,
                                ffi::Result<ffi::AnyBuffer> y, ffi::Result<ffi::AnyBuffer> mean,
                                ffi::Result<ffi::AnyBuffer> var, ffi::Result<ffi::AnyBuffer> ws,
                                float epsilon, int64_t relu) {
  NormGeometry g;
  const ffi::AnyBuffer &yb = *y, &mb = *mean, &vb = *var;
  if (auto err = NormCheck(x, epsilon, relu, &g, {{"scale", &scale}, {"shift", &shift},
                                                   {"mean", &mb}, {"variance", &vb}},
                           {{"output", &yb}});
      !err.success()) {
    return err;
  }
  try {
    const auto e = LookupNorm(kNormForward, g);
    if (ws->size_bytes() < e->weights.get_size()) {
      return ffi::Error::InvalidArgument("jaxconv onednn: batch norm's workspace is too small");
    }
    std::lock_guard<std::mutex> lock(ExecutionMutex());
    dnnl::stream& s = Stream();
    const memory::desc c({g.Channels()}, dt::f32, dims{1});
    e->prim.execute(s, {{DNNL_ARG_SRC, memory(g.Desc(), Engine(), Data(x))},
                        {DNNL_ARG_DST, memory(g.Desc(), Engine(), Data(yb))},
                        {DNNL_ARG_SCALE, memory(c, Engine(), Data(scale))},
                        {DNNL_ARG_SHIFT, memory(c, Engine(), Data(shift))},
                        {DNNL_ARG_MEAN, memory(c, Engine(), Data(mb))},
                        {DNNL_ARG_VARIANCE, memory(c, Engine(), Data(vb))},
                        {DNNL_ARG_WORKSPACE, memory(e->weights, Engine(), Data(*ws))},
                        {DNNL_ARG_SCRATCHPAD, Scratchpad(e->scratchpad)}});
    s.wait();
    ReleaseLargeScratchpad();
  } catch (const std::exception& ex) {
    return ffi::Error::Internal("jaxconv onednn: batch norm forward " + Shape(x.dimensions()) +
                                ": " + ex.what());
  }
  if (g.relu) {  // put back the NaNs the fused ReLU turned into 0 (see above)
    const int64_t c = g.Channels();
    const float* stats[] = {static_cast<const float*>(Data(mb)), static_cast<const float*>(Data(vb)),
                            static_cast<const float*>(Data(scale)),
                            static_cast<const float*>(Data(shift))};
    std::vector<int64_t> bad;
    for (int64_t i = 0; i < c; ++i) {
      for (const float* v : stats) {
        if (std::isnan(v[i])) {
          bad.push_back(i);
          break;
        }
      }
    }
    if (!bad.empty()) {
      float* out = static_cast<float*>(Data(yb));
      const int64_t rows = static_cast<int64_t>(yb.element_count()) / c;
      const float nan = std::numeric_limits<float>::quiet_NaN();
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t i : bad) out[r * c + i] = nan;
      }
    }
  }
  return ffi::Error::Success();
}

ffi::Error BatchNormBackwardImpl(ffi::AnyBuffer x, ffi::AnyBuffer scale, ffi::AnyBuffer mean,
                                 ffi::AnyBuffer var, ffi::AnyBuffer ws, ffi::AnyBuffer dy,
                                 ffi::Result<ffi::AnyBuffer> dx,
                                 ffi::Result<ffi::AnyBuffer> dscale,
                                 ffi::Result<ffi::AnyBuffer> dshift, float epsilon,
                                 int64_t relu) {
  NormGeometry g;
  const ffi::AnyBuffer &dxb = *dx, &dsb = *dscale, &dhb = *dshift;
  if (auto err = NormCheck(x, epsilon, relu, &g,
                           {{"scale", &scale}, {"mean", &mean}, {"variance", &var},
                            {"scale gradient", &dsb}, {"shift gradient", &dhb}},
                           {{"output gradient", &dy}, {"input gradient", &dxb}});
      !err.success()) {
    return err;
  }
  try {
    const auto e = LookupNorm(kNormBackward, g);
    if (ws.size_bytes() < e->weights.get_size()) {
      return ffi::Error::InvalidArgument("jaxconv onednn: batch norm's workspace is too small");
    }
    std::lock_guard<std::mutex> lock(ExecutionMutex());
    dnnl::stream& s = Stream();
    const memory::desc c({g.Channels()}, dt::f32, dims{1});
    e->prim.execute(s, {{DNNL_ARG_SRC, memory(g.Desc(), Engine(), Data(x))},
                        {DNNL_ARG_DIFF_DST, memory(g.Desc(), Engine(), Data(dy))},
                        {DNNL_ARG_SCALE, memory(c, Engine(), Data(scale))},
                        {DNNL_ARG_MEAN, memory(c, Engine(), Data(mean))},
                        {DNNL_ARG_VARIANCE, memory(c, Engine(), Data(var))},
                        {DNNL_ARG_WORKSPACE, memory(e->weights, Engine(), Data(ws))},
                        {DNNL_ARG_DIFF_SRC, memory(g.Desc(), Engine(), Data(dxb))},
                        {DNNL_ARG_DIFF_SCALE, memory(c, Engine(), Data(dsb))},
                        {DNNL_ARG_DIFF_SHIFT, memory(c, Engine(), Data(dhb))},
                        {DNNL_ARG_SCRATCHPAD, Scratchpad(e->scratchpad)}});
    s.wait();
    ReleaseLargeScratchpad();
  } catch (const std::exception& ex) {
    return ffi::Error::Internal("jaxconv onednn: batch norm backward " +
                                Shape(x.dimensions()) + ": " + ex.what());
  }
  return ffi::Error::Success();
}

}  // namespace

// The library is built with hidden visibility; these are its whole interface. Python checks
// jaxconv_onednn_version and jaxconv_onednn_ffi_api before registering the handlers, so a
// stale or foreign build is refused with a warning rather than called.
#define JAXCONV_EXPORT extern "C" __attribute__((visibility("default")))
JAXCONV_EXPORT XLA_FFI_Error* JaxconvOnednnForward(XLA_FFI_CallFrame* call_frame);
JAXCONV_EXPORT XLA_FFI_Error* JaxconvOnednnBackwardData(XLA_FFI_CallFrame* call_frame);
JAXCONV_EXPORT XLA_FFI_Error* JaxconvOnednnBackwardWeights(XLA_FFI_CallFrame* call_frame);
JAXCONV_EXPORT XLA_FFI_Error* JaxconvOnednnInference(XLA_FFI_CallFrame* call_frame);
JAXCONV_EXPORT XLA_FFI_Error* JaxconvOnednnBottleneck(XLA_FFI_CallFrame* call_frame);
JAXCONV_EXPORT XLA_FFI_Error* JaxconvOnednnBatchNorm(XLA_FFI_CallFrame* call_frame);
JAXCONV_EXPORT XLA_FFI_Error* JaxconvOnednnBatchNormBackward(XLA_FFI_CallFrame* call_frame);
JAXCONV_EXPORT int64_t jaxconv_onednn_norm_workspace(const int64_t* shape, int64_t rank,
                                                     double epsilon, int64_t relu);
JAXCONV_EXPORT int jaxconv_onednn_packed_layout(const int64_t* flat, int64_t n, int64_t* bytes,
                                                int64_t* fingerprint, char* err, int64_t errlen);
JAXCONV_EXPORT int jaxconv_onednn_pack(const int64_t* flat, int64_t n, const void* w, void* out,
                                       int64_t out_bytes, char* err, int64_t errlen);
JAXCONV_EXPORT int64_t jaxconv_onednn_profile(int64_t* out, int64_t reset);
JAXCONV_EXPORT int jaxconv_onednn_native_bf16();
JAXCONV_EXPORT int jaxconv_onednn_amx();
JAXCONV_EXPORT int64_t jaxconv_onednn_cache_size();
JAXCONV_EXPORT int64_t jaxconv_onednn_cache_capacity();
JAXCONV_EXPORT void jaxconv_onednn_set_cache_capacity(int64_t capacity);
JAXCONV_EXPORT int64_t jaxconv_onednn_scratchpad_bytes();
JAXCONV_EXPORT int64_t jaxconv_onednn_build_threads(int64_t* out);
JAXCONV_EXPORT const char* jaxconv_onednn_version();
JAXCONV_EXPORT int64_t jaxconv_onednn_ffi_api();

#define JAXCONV_CONV_ATTRS                          \
  .Attr<ffi::Span<const int64_t>>("stride")         \
      .Attr<ffi::Span<const int64_t>>("pad_lo")     \
      .Attr<ffi::Span<const int64_t>>("pad_hi")     \
      .Attr<ffi::Span<const int64_t>>("dilation")   \
      .Attr<int64_t>("groups")                      \
      .Attr<int64_t>("channels_last")               \
      .Attr<int64_t>("transposed")

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxconvOnednnForward, ForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .RemainingArgs()
                                  .Ret<ffi::AnyBuffer>() JAXCONV_CONV_ATTRS);

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxconvOnednnBackwardData, BackwardDataImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>() JAXCONV_CONV_ATTRS);

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxconvOnednnBackwardWeights, BackwardWeightsImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>() JAXCONV_CONV_ATTRS);

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxconvOnednnInference, InferenceImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .RemainingArgs()
                                  .Ret<ffi::AnyBuffer>() JAXCONV_CONV_ATTRS
                                  .Attr<int64_t>("activation")
                                  .Attr<int64_t>("residual")
                                  .Attr<int64_t>("packed_format"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxconvOnednnBottleneck, BottleneckImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>() JAXCONV_CONV_ATTRS
                                  .Attr<int64_t>("activation")
                                  .Attr<int64_t>("out_activation"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxconvOnednnBatchNorm, BatchNormForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<float>("epsilon")
                                  .Attr<int64_t>("relu"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxconvOnednnBatchNormBackward, BatchNormBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<float>("epsilon")
                                  .Attr<int64_t>("relu"));

// The bytes of batch norm's workspace for x of `shape` (channels last): what the forward
// writes and the backward reads; 0 without ReLU; -1 where oneDNN has no primitive for it.
int64_t jaxconv_onednn_norm_workspace(const int64_t* shape, int64_t rank, double epsilon,
                                      int64_t relu) {
  NormGeometry g;
  std::string why;
  if (shape == nullptr || !DescribeNorm(ffi::Span<const int64_t>(shape, rank),
                                        static_cast<float>(epsilon), relu, &g, &why)) {
    return -1;
  }
  try {
    return static_cast<int64_t>(LookupNorm(kNormForward, g)->weights.get_size());
  } catch (const std::exception&) {
    return -1;
  }
}

// The layout a frozen conv's primitive wants its weights in: its size in bytes and its
// fingerprint (0 on success, else 1 with the reason in `err`). Builds (and caches) the
// primitive the Inference handler will look up for the same geometry.
int jaxconv_onednn_packed_layout(const int64_t* flat, int64_t n, int64_t* bytes,
                                 int64_t* fingerprint, char* err, int64_t errlen) {
  Geometry g;
  std::string why;
  if (!FromFlat(flat, n, &g, &why)) return Report(why, err, errlen);
  try {
    const auto e = Lookup(kForward, g);
    *bytes = static_cast<int64_t>(e->weights.get_size());
    *fingerprint = e->fingerprint;
  } catch (const std::exception& ex) {
    return Report(std::string("jaxconv onednn: ") + ex.what(), err, errlen);
  }
  return 0;
}

// Reorders the plain weights `w` (XLA's layout for this geometry) into `out`, the layout
// jaxconv_onednn_packed_layout describes (`out_bytes` must be its size).
int jaxconv_onednn_pack(const int64_t* flat, int64_t n, const void* w, void* out,
                        int64_t out_bytes, char* err, int64_t errlen) {
  Geometry g;
  std::string why;
  if (!FromFlat(flat, n, &g, &why)) return Report(why, err, errlen);
  try {
    const auto e = Lookup(kForward, g);
    if (static_cast<int64_t>(e->weights.get_size()) != out_bytes) {
      return Report("jaxconv onednn: the packed buffer has the wrong size", err, errlen);
    }
    std::lock_guard<std::mutex> lock(ExecutionMutex());
    dnnl::stream& s = Stream();
    memory user(g.WeiDesc(), Engine(), const_cast<void*>(w));
    memory packed(e->weights, Engine(), out);
    dnnl::reorder(user, packed).execute(s, user, packed);
    s.wait();
  } catch (const std::exception& ex) {
    return Report(std::string("jaxconv onednn: ") + ex.what(), err, errlen);
  }
  return 0;
}

namespace {
// 1 when oneDNN's effective ISA on this CPU includes `need`.
int Dispatches(dnnl::cpu_isa need) {
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  return (isa & static_cast<unsigned>(need)) == static_cast<unsigned>(need) ? 1 : 0;
}
}  // namespace

// 1 when oneDNN dispatches native bfloat16 kernels on this CPU (AVX512_BF16 or AMX); without
// them its bf16 convs fall back to slow reference code, so Python keeps the f32 upcast there.
int jaxconv_onednn_native_bf16() { return Dispatches(dnnl::cpu_isa::avx512_core_bf16); }

// 1 when oneDNN dispatches AMX (bf16 tile) kernels on this CPU: there a grouped bf16 conv with
// few channels per group runs faster with its groups merged into block-diagonal ones (Python).
int jaxconv_onednn_amx() { return Dispatches(dnnl::cpu_isa::avx512_core_amx); }

// How many primitives are cached (tests check that equal shapes build nothing new).
int64_t jaxconv_onednn_cache_size() {
  Cache& cache = PrimitiveCache();
  std::lock_guard<std::mutex> lock(cache.mu);
  return static_cast<int64_t>(cache.entries.size());
}

// The cache's bound, and a new one (at least 1; the least recently used are evicted at once).
int64_t jaxconv_onednn_cache_capacity() {
  Cache& cache = PrimitiveCache();
  std::lock_guard<std::mutex> lock(cache.mu);
  return static_cast<int64_t>(cache.capacity);
}

void jaxconv_onednn_set_cache_capacity(int64_t capacity) {
  Cache& cache = PrimitiveCache();
  std::lock_guard<std::mutex> lock(cache.mu);
  cache.capacity = static_cast<size_t>(capacity < 1 ? 1 : capacity);
  cache.Trim();
}

// The per-call profile (JAXCONV_ONEDNN_PROFILE=1): writes the nanoseconds spent in each
// phase (describe, lookup, lock, setup, execute, wait) to out[0..5] and returns the number of
// calls profiled (-1 when profiling is off); `reset` zeroes the counters afterwards.
int64_t jaxconv_onednn_profile(int64_t* out, int64_t reset) {
  Profile& p = Profiler();
  std::lock_guard<std::mutex> lock(p.mu);
  for (int i = 0; i < kPhases; ++i) {
    out[i] = p.ns[i];
    if (reset) p.ns[i] = 0;
  }
  const int64_t calls = p.calls;
  if (reset) p.calls = 0;
  return p.on ? calls : -1;
}

// The scratchpad kept between calls (at most kRetainedScratchpad).
int64_t jaxconv_onednn_scratchpad_bytes() {
  std::lock_guard<std::mutex> lock(ExecutionMutex());
  return static_cast<int64_t>(ScratchpadState().capacity);
}

// The thread counts primitives were built with (BuildThreads): writes the number built, the
// fewest and most OpenMP threads seen on their building threads, how many were built inside a
// parallel region, and omp_get_max_threads() on the calling thread, to out[0..4].
int64_t jaxconv_onednn_build_threads(int64_t* out) {
  BuildThreads& b = Builds();
  std::lock_guard<std::mutex> lock(b.mu);
  out[0] = b.builds;
  out[1] = b.fewest;
  out[2] = b.most;
  out[3] = b.in_parallel;
  out[4] = omp_get_max_threads();
  return 0;
}

#ifndef JAXCONV_VERSION
#error "the build passes -DJAXCONV_VERSION (CMakeLists.txt: the project's version)"
#endif

// The jaxconv version this was built from: Python loads only a build of its own version.
const char* jaxconv_onednn_version() { return JAXCONV_VERSION; }

// The XLA FFI API version (major << 16 | minor) of the headers this was built against: Python
// refuses a build whose major differs from the running jaxlib's or whose minor is newer.
int64_t jaxconv_onednn_ffi_api() {
  return (int64_t{XLA_FFI_API_MAJOR} << 16) | int64_t{XLA_FFI_API_MINOR};
}
