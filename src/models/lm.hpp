// Model construction shared by Model::load, the shape registry (random weights) and the backends:
// a ModelConfig plus a Checkpoint (files or in-memory tensors) become a CPU or CUDA model.
#pragma once
#include <memory>
#include <string>

#include "loader/checkpoint.hpp"
#include "ssm/model.hpp"

namespace ssm {

// Picks the backend from opt.device ("cpu", "cuda", "cuda:N"). `what` names the source in errors.
std::unique_ptr<Model> make_model(ModelConfig cfg, Checkpoint ck, const std::string& what, const LoadOptions& opt);
std::unique_ptr<Model> make_cpu_model(ModelConfig cfg, Checkpoint ck, const std::string& what);
// Defined by the CUDA backend; without it (or without a GPU) throws a one-line ssm::Error.
std::unique_ptr<Model> make_cuda_model(ModelConfig cfg, Checkpoint ck, const std::string& what, const LoadOptions& opt);

// Parameter counts per stored dtype (a tied lm_head stored twice counts once).
void count_params(const ModelConfig& c, const Checkpoint& ck, ModelInfo& mi);

}  // namespace ssm
