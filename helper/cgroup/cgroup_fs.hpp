// Small file operations on cgroup directories, all relative to an open
// directory fd: the cgroup code keeps an fd per directory it made, and tests
// drive the same functions against plain temporary directories.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "error.hpp"
#include "unique_fd.hpp"

namespace gpubox::cgroup {

// Whole content of FILE in DIRFD, or nullopt when it cannot be read (a
// missing control file means "this controller is not here", not an error).
std::optional<std::string> readControl(int dirFd, const char* file);

// Writes VALUE to FILE in DIRFD in one write(2): cgroup files take one value
// per write. DIR names the directory in the error. Throws gpubox::Error
// "writing VALUE to DIR/FILE: <errno>".
void writeControl(int dirFd, const std::string& dir, const char* file, const std::string& value);

// The same for a directory given by its absolute path.
void writeControl(const std::string& dir, const char* file, const std::string& value);

// Several values into one control file, one write(2) each through one open
// file (cgroupfs takes each write as one value, as devices.allow and
// devices.deny need): a GPU sandbox's v1 device rules are a dozen lines.
// Made in two halves so that a thread that may not allocate (the cgroup
// worker's, helper/cgroup_worker.hpp) can do the writes: the values are
// built beforehand, and the outcome is put in words afterwards.
struct ControlWrites {
  const char* file = "";
  std::vector<std::string> values;
  int err = 0;          // 0: every value written
  size_t failedAt = 0;  // the value that failed (the first, when the open did)

  // Opens FILE in DIRFD and writes each value, stopping at the first
  // failure. System calls only: no allocation, no exception.
  void carryOut(int dirFd) noexcept;
  // "writing VALUE to DIR/FILE: <errno>", for a failed carryOut().
  std::string failure(const std::string& dir) const;
};

// carryOut() on the spot; throws gpubox::Error with failure()'s words.
void writeControlEach(int dirFd, const std::string& dir, const char* file,
                      const std::vector<std::string>& values);

// Whether FILE exists in DIRFD.
bool hasControl(int dirFd, const char* file);

// The pids listed in DIRFD's cgroup.procs; empty when none or unreadable.
std::vector<pid_t> cgroupPids(int dirFd);

// Throws gpubox::Error unless NAME is one path component of [A-Za-z0-9._-]
// (at most 128 bytes, not "." or "..").
void validateCgroupName(const std::string& name);

// mkdir DIR (a child of PARENT, and PARENT itself if it went missing),
// refusing to adopt an existing directory: a stale or foreign cgroup of
// that name could hold other limits or other processes. Sets *FD to an
// O_DIRECTORY fd; returns what failed, and leaves nothing behind when
// something did. It allocates nothing (the cgroup worker's thread calls it).
struct MakeResult {
  enum class Step { Done, Parent, Dir, Open } failed = Step::Done;
  int err = 0;
};
MakeResult makeCgroupDir(const std::string& parent, const std::string& dir, UniqueFd* fd);
// The error, in words, for R (R.failed != Done).
Error makeCgroupError(const std::string& parent, const std::string& dir, const MakeResult& r);

// mkdir -p of PATH, which must lie under BASE (existing, never created here).
void makeDirsUnder(const std::string& base, const std::string& path);

}  // namespace gpubox::cgroup
