// Stand-in for the CUDA backend in builds without it (SSM_CUDA=OFF or no nvcc found).
#include "models/lm.hpp"

namespace ssm {

std::unique_ptr<Model> make_cuda_model(ModelConfig, Checkpoint, const std::string&, const LoadOptions& opt) {
  throw Error("device '" + opt.device + "': this build of ssm has no CUDA backend (rebuild with nvcc available and -DSSM_CUDA=ON)");
}

}  // namespace ssm
