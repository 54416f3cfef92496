#pragma once

// hookfan::Mutex, hookfan::MutexLock and hookfan::Notification are
// absl::Mutex, absl::MutexLock and absl::Notification made visible to
// ThreadSanitizer.
//
// Debian's abseil is built without TSan, so the synchronization inside
// absl::Mutex is invisible to it and every critical section guarded by one
// reads as a data race. In a TSan build (HOOKFAN_TSAN, set by CMake with
// -fsanitize=thread, which also hides __SANITIZE_THREAD__) these wrappers
// tell TSan what the lock does: acquire after locking, release before
// unlocking, and the same around an Await and around each evaluation of
// its condition (absl may evaluate a waiter's condition on the thread that
// unlocks). In every other build they compile to the absl calls alone.
//
// Use these instead of the absl types in hookfan's code; the API is the
// subset of absl's that hookfan uses, with the same meaning.

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

#ifdef HOOKFAN_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace hookfan {

namespace sync_internal {

// What the lock means to TSan: a happens-before edge from every release
// of `object` to every later acquire of it.
inline void Acquired([[maybe_unused]] const void* object) {
#ifdef HOOKFAN_TSAN
  __tsan_acquire(const_cast<void*>(object));
#endif
}
inline void Releasing([[maybe_unused]] const void* object) {
#ifdef HOOKFAN_TSAN
  __tsan_release(const_cast<void*>(object));
#endif
}

}  // namespace sync_internal

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  // For a Mutex of static storage duration (never destroyed).
  explicit constexpr Mutex(absl::ConstInitType) : mu_(absl::kConstInit) {}
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    mu_.Lock();
    sync_internal::Acquired(this);
  }
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    sync_internal::Releasing(this);
    mu_.Unlock();
  }
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() { mu_.AssertHeld(); }

  // As absl::Mutex: unlock until `condition` holds, then hold the lock
  // again. The timed forms return whether it holds.
  void Await(const absl::Condition& condition)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    Waiting(condition, [&](const absl::Condition& c) {
      mu_.Await(c);
      return true;
    });
  }
  bool AwaitWithTimeout(const absl::Condition& condition,
                        absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    return Waiting(condition, [&](const absl::Condition& c) {
      return mu_.AwaitWithTimeout(c, timeout);
    });
  }
  bool AwaitWithDeadline(const absl::Condition& condition,
                         absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    return Waiting(condition, [&](const absl::Condition& c) {
      return mu_.AwaitWithDeadline(c, deadline);
    });
  }

 private:
#ifdef HOOKFAN_TSAN
  // A condition evaluated as if under the lock, on whichever thread absl
  // evaluates it.
  struct Annotated {
    const Mutex* mutex;
    const absl::Condition* condition;

    static bool Eval(Annotated* self) {
      sync_internal::Acquired(self->mutex);
      bool holds = self->condition->Eval();
      sync_internal::Releasing(self->mutex);
      return holds;
    }
    absl::Condition AsCondition() { return absl::Condition(&Eval, this); }
  };
#endif

  template <typename Wait>
  bool Waiting(const absl::Condition& condition, Wait wait) {
#ifdef HOOKFAN_TSAN
    Annotated annotated{this, &condition};
    sync_internal::Releasing(this);
    bool holds = wait(annotated.AsCondition());
    sync_internal::Acquired(this);
    return holds;
#else
    return wait(condition);
#endif
  }

  absl::Mutex mu_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
  }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

class Notification {
 public:
  Notification() = default;
  Notification(const Notification&) = delete;
  Notification& operator=(const Notification&) = delete;

  void Notify() {
    sync_internal::Releasing(this);
    notification_.Notify();
  }
  bool HasBeenNotified() const {
    return Seen(notification_.HasBeenNotified());
  }
  void WaitForNotification() const {
    notification_.WaitForNotification();
    Seen(true);
  }
  bool WaitForNotificationWithTimeout(absl::Duration timeout) const {
    return Seen(notification_.WaitForNotificationWithTimeout(timeout));
  }

 private:
  bool Seen(bool notified) const {
    if (notified) sync_internal::Acquired(this);
    return notified;
  }

  absl::Notification notification_;
};

}  // namespace hookfan
