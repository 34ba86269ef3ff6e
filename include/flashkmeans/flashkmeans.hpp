// flashkmeans: exact batched k-means. Include this one header.
#pragma once

#include "flashkmeans/errors.hpp"
#include "flashkmeans/kmeans.hpp"
#include "flashkmeans/options.hpp"
#include "flashkmeans/result.hpp"
#include "flashkmeans/tensor.hpp"
#include "flashkmeans/types.hpp"
#include "flashkmeans/version.hpp"
