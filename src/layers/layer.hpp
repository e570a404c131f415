// Building blocks shared by the mixers: Linear (weight in checkpoint dtype, optional bias), and the
// Segment view used to run a block of T token rows that belong to several sequences at once.
// A segment of length 1 takes the recurrent step path; a longer one the parallel/chunked path.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.hpp"
#include "loader/weights.hpp"
#include "ssm/config.hpp"

namespace ssm {

// Rows [start, start+len) of the block belong to one sequence whose per-layer state is `state`.
struct Segment {
  int64_t start, len;
  float* state;  // this layer's slice of the sequence's State
};

struct Linear {
  Tensor w;               // (out, in), checkpoint dtype
  std::vector<uint16_t> scale;  // q8 block scales (out, in/32), f16 bits, when w is I8
  std::vector<float> b;   // (out) or empty
  int64_t out = 0, in = 0;

  static Linear load(const Weights& W, const std::string& prefix, int64_t out, int64_t in, bool bias, const std::string& why);
  // y (M, out) = x (M, in) · wᵀ + b
  void operator()(const float* x, int64_t M, int64_t x_stride, float* y, int64_t y_stride) const;
  int64_t params() const { return out * in + int64_t(b.size()); }
};

// Scratch memory of a forward pass, one per model and shared by all its layers: the layers run one
// after another, so one set of buffers serves them all (per-layer buffers held, for a 2,048-token
// block, 1.5 GB on mamba-130m and 8 GB on mamba-1.4b). Slot i keeps the most floats ever asked of
// it; contents do not survive from one get() of a slot to the next user of that slot.
class Scratch {
 public:
  float* get(size_t slot, size_t n) {
    if (slots_.size() <= slot) slots_.resize(slot + 1);
    if (slots_[slot].size() < n) slots_[slot].resize(n);
    return slots_[slot].data();
  }

 private:
  std::vector<std::vector<float>> slots_;
};

class Mixer {
 public:
  virtual ~Mixer() = default;
  // x (T, D) normalised block input -> out (T, D); each segment reads and advances its state.
  // Intermediate rows live in `ws` (the model's shared scratch).
  virtual void forward(const float* x, int64_t T, const std::vector<Segment>& segs, float* out, Scratch& ws) = 0;
  virtual int64_t state_floats() const = 0;
  virtual int64_t params() const = 0;
};

std::unique_ptr<Mixer> make_mamba1_mixer(const ModelConfig& c, const Weights& W, const std::string& prefix);
std::unique_ptr<Mixer> make_mamba2_mixer(const ModelConfig& c, const Weights& W, const std::string& prefix);

// Depthwise conv weights (C, K) as (K, C), the layout the CPU conv kernel reads (ConvParams::w_t).
std::vector<float> transpose_conv(const std::vector<float>& w, int64_t C, int64_t K);

// Weightless or weighted RMSNorm of each of the M rows of x (in place allowed).
void rms_norm_rows(const float* x, int64_t M, int64_t D, int64_t stride, const float* w, float eps, float* y);

}  // namespace ssm
