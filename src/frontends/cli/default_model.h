// Where the CLI finds its shipped assets and the built-in default model.
#pragma once
#include <string>

namespace dsv4::cli {

// The gzip'ed V4 tokenizer shipped in assets/: $DSV4_ASSETS, the source tree's assets/
// (compiled in), or assets/ next to / above the executable. Throws Error listing the tries.
std::string find_tokenizer_asset();

// The trained default model shipped in assets/default-model (built by
// scripts/train-default.sh), searched like the tokenizer; "" when no assets dir has one.
std::string find_shipped_default_model();

// The default model directory: $DSV4_DEFAULT_MODEL, else the shipped trained model
// (find_shipped_default_model), else ${XDG_CACHE_HOME:-$HOME/.cache}/dsv4/models/tiny-default-1m,
// created on first use as a `tiny` preset random model (seed 0) with the V4 tokenizer.
std::string ensure_default_model(bool verbose);

}  // namespace dsv4::cli
