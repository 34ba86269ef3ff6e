// The one error idiom: FK_CHECK(condition, kind, message built with <<).
#pragma once

#include <sstream>

#include "flashkmeans/errors.hpp"

#define FK_CHECK(cond, kind, msg)                                              \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::ostringstream fk_check_os_;                                         \
      fk_check_os_ << msg;                                                     \
      throw ::flashkmeans::Error(::flashkmeans::ErrorKind::kind, fk_check_os_.str()); \
    }                                                                          \
  } while (0)
