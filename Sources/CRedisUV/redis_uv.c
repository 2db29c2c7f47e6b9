#include "redis_uv.h"
