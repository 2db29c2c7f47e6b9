#pragma once
#include <hiredis/async.h>
