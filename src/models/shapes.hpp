// Registry of published model shapes (mamba-130m … mamba-2.8b, mamba2-130m … mamba2-2.7b,
// falcon-mamba-7b; configs from state-spaces/* and tiiuae/falcon-mamba-7b) and models with random,
// numerically sane weights of those shapes, so benchmarks need no download.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.hpp"
#include "ssm/config.hpp"
#include "ssm/model.hpp"

namespace ssm {

std::vector<std::string> shape_names();
// The config.json a published checkpoint of this shape carries (HF layout). Throws listing the names.
std::string shape_config_json(const std::string& name);
ModelConfig shape_config(const std::string& name);
// Parameter count implied by a config (embedding counted once when tied).
int64_t config_params(const ModelConfig& c);

// A model of shape `name` with random weights stored in `dtype` (small normal matrices, A_log = log(1..N)
// as in the reference init, dt_bias so that softplus(dt_bias) spans 1e-3..1e-1).
std::unique_ptr<Model> random_model(const std::string& name, DType dtype, const LoadOptions& opt, uint64_t seed = 1);

}  // namespace ssm
