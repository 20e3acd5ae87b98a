// deny_userns PROGRAM [ARGS...]: runs PROGRAM where creating a user
// namespace fails with EPERM, as on a kernel or a pod whose policy forbids
// them, without touching the host-wide user.max_user_namespaces (other tests
// run at the same time). A seccomp filter answers unshare(2) and clone(2)
// with CLONE_NEWUSER in their flags with EPERM; everything else is allowed.
// clone3 passes its flags in memory a filter cannot read, so it is left
// alone: the helper probes with unshare, and once it has decided against
// user namespaces it never asks clone3 for one.
#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: deny_userns PROGRAM [ARGS...]\n");
    return 2;
  }
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) {
    std::fprintf(stderr, "deny_userns: seccomp_init failed\n");
    return 1;
  }
  // Root installs the filter with CAP_SYS_ADMIN; no_new_privs would change
  // the program under test, so it is not set.
  int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
  const scmp_arg_cmp newUser = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER);
  if (rc == 0) rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 1, newUser);
  if (rc == 0) rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1, newUser);
  if (rc == 0) rc = seccomp_load(ctx);
  seccomp_release(ctx);
  if (rc != 0) {
    std::fprintf(stderr, "deny_userns: cannot install the filter: %s\n", std::strerror(-rc));
    return 1;
  }
  ::execv(argv[1], argv + 1);
  std::fprintf(stderr, "deny_userns: exec %s: %s\n", argv[1], std::strerror(errno));
  return 127;
}
