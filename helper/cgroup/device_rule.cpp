#include "device_rule.hpp"

#include "error.hpp"

namespace gpubox::cgroup {

void validate(const DeviceRule& rule) {
  const bool typeOk = rule.type == 'c' || rule.type == 'b' || rule.type == 'a';
  const bool accessOk = !rule.access.empty() && rule.access.size() <= 3 &&
                        rule.access.find_first_not_of("rwm") == std::string::npos;
  // The BPF context and v1 both carry 32-bit major/minor numbers, but the
  // kernel's dev_t has 12-bit majors and 20-bit minors.
  const bool numbersOk =
      rule.major >= -1 && rule.major < (1 << 12) && rule.minor >= -1 && rule.minor < (1 << 20);
  // v1 reads "a" as "every device" and ignores numbers after it; require the
  // rule to say exactly that so both backends mean the same thing.
  const bool allOk = rule.type != 'a' || (rule.major == -1 && rule.minor == -1);
  if (!typeOk || !accessOk || !numbersOk || !allOk)
    throw Error("invalid device rule '" + toString(rule) + "'");
}

std::string toString(const DeviceRule& rule) {
  if (rule.type == 'a') return "a";
  const auto num = [](int n) { return n < 0 ? std::string("*") : std::to_string(n); };
  return std::string(1, rule.type) + " " + num(rule.major) + ":" + num(rule.minor) + " " +
         rule.access;
}

}  // namespace gpubox::cgroup
