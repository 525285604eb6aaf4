from selftrain.samplers.base import Sampler, SamplingParams

__all__ = ["Sampler", "SamplingParams"]
