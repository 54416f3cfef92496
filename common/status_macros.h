#pragma once

// Early-return helpers for absl::Status / absl::StatusOr (Debian's abseil
// ships none).

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define HOOKFAN_CONCAT_INNER_(a, b) a##b
#define HOOKFAN_CONCAT_(a, b) HOOKFAN_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define RETURN_IF_ERROR(expr)                      \
  do {                                             \
    if (absl::Status _st = (expr); !_st.ok()) {    \
      return _st;                                  \
    }                                              \
  } while (0)

// `lhs = value of expr`, or returns its status from the enclosing function.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(HOOKFAN_CONCAT_(_statusor_, __LINE__), lhs, expr)

#define ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                           \
  if (!statusor.ok()) {                             \
    return std::move(statusor).status();            \
  }                                                 \
  lhs = *std::move(statusor)
