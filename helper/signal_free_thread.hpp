// A helper thread that never takes a signal: kj's event port expects
// SIGTERM, SIGINT and SIGHUP to stay blocked in every thread but the home
// loop's, and a signal's default action on another thread would end the
// helper. A new thread inherits the signal mask of the thread that creates
// it, so the mask is full while it is created and restored after.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <thread>
#include <utility>

namespace gpubox {

template <typename Fn>
std::thread startSignalFreeThread(Fn&& fn) {
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  try {
    std::thread thread(std::forward<Fn>(fn));
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    return thread;
  } catch (...) {
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    throw;
  }
}

}  // namespace gpubox
