// A JSON number as the exact decimal its text writes: 9007199254740991.0 is more than
// 9007199254740990, and 1e400 is a number like any other. Comparisons and multipleOf work on
// the digits; nothing goes through a double unless a divisor is too long for 128 bits.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

namespace edgeflow_validate {

__extension__ typedef unsigned __int128 uint128;  // GCC and clang; ISO C++ has no 128-bit integer

struct Decimal {
  bool negative = false;
  std::string digits;  // significant digits, no leading or trailing zeros; empty for zero
  int64_t exponent = 0;  // the value is 0.<digits> * 10^exponent

  // From JSON number text (already checked by the reader). An exponent too large for int64 is
  // clamped: such a number is beyond any other anyway.
  static Decimal parse(std::string_view t) {
    Decimal d;
    size_t i = 0;
    if (i < t.size() && t[i] == '-') d.negative = true, ++i;
    int64_t int_digits = 0;
    bool leading = true;
    int64_t skipped = 0;  // leading zeros before the first significant digit, in the integer part
    int64_t frac_zeros = 0;  // zeros after the point before the first significant digit
    bool in_fraction = false;
    for (; i < t.size(); ++i) {
      char c = t[i];
      if (c == '.') {
        in_fraction = true;
        continue;
      }
      if (c == 'e' || c == 'E') break;
      if (!in_fraction) ++int_digits;
      if (leading && c == '0') {
        if (in_fraction) ++frac_zeros;
        else ++skipped;
        continue;
      }
      leading = false;
      d.digits.push_back(c);
    }
    int64_t exp = 0;
    if (i < t.size()) {
      ++i;
      bool neg = false;
      if (i < t.size() && (t[i] == '+' || t[i] == '-')) neg = t[i++] == '-';
      for (; i < t.size(); ++i) {
        if (exp < int64_t(100000000000000000)) exp = exp * 10 + (t[i] - '0');  // clamped near 1e18
      }
      if (neg) exp = -exp;
    }
    while (!d.digits.empty() && d.digits.back() == '0') d.digits.pop_back();
    if (d.digits.empty()) {
      d.negative = false;
      return d;
    }
    d.exponent = int_digits - skipped - frac_zeros + exp;
    return d;
  }

  // A plain integer of at most 18 digits (most numbers in messages) as an int64, the fast path.
  static bool small_integer(std::string_view t, int64_t& out) {
    size_t i = t.size() && t[0] == '-' ? 1 : 0;
    if (t.size() == i || t.size() - i > 18) return false;
    int64_t v = 0;
    for (size_t k = i; k < t.size(); ++k) {
      if (t[k] < '0' || t[k] > '9') return false;
      v = v * 10 + (t[k] - '0');
    }
    out = i ? -v : v;
    return true;
  }

  bool zero() const { return digits.empty(); }
  bool integer() const { return zero() || int64_t(digits.size()) <= exponent; }

  // -1, 0, 1 as |a| is less than, equal to, more than |b|.
  static int compare_magnitude(const Decimal& a, const Decimal& b) {
    if (a.zero() || b.zero()) return a.zero() == b.zero() ? 0 : a.zero() ? -1 : 1;
    if (a.exponent != b.exponent) return a.exponent < b.exponent ? -1 : 1;
    int c = a.digits.compare(b.digits);
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  static int compare(const Decimal& a, const Decimal& b) {
    if (a.negative != b.negative) return a.negative ? -1 : 1;
    int m = compare_magnitude(a, b);
    return a.negative ? -m : m;
  }

  // Whether this is an integer multiple of `m` (> 0).
  bool multiple_of(const Decimal& m) const {
    if (zero()) return true;
    // this = X * 10^ex, m = M * 10^em with X, M the digit strings as integers.
    int64_t ex = exponent - int64_t(digits.size());
    int64_t em = m.exponent - int64_t(m.digits.size());
    // X*10^ex / (M*10^em) is an integer iff X*10^(ex-s) is divisible by M*10^(em-s), s = min.
    int64_t s = std::min(ex, em);
    int64_t divisor_zeros = em - s, dividend_zeros = ex - s;
    if (int64_t(m.digits.size()) + divisor_zeros <= 36 && dividend_zeros <= 100000) {
      uint128 divisor = 0;
      for (char c : m.digits) divisor = divisor * 10 + unsigned(c - '0');
      for (int64_t i = 0; i < divisor_zeros; ++i) divisor *= 10;
      uint128 r = 0;
      for (char c : digits) r = (r * 10 + unsigned(c - '0')) % divisor;
      for (int64_t i = 0; i < dividend_zeros && r != 0; ++i) r = (r * 10) % divisor;
      return r == 0;
    }
    // Beyond 128 bits: as doubles, and a quotient too large to tell is not a multiple.
    double q = to_double() / m.to_double();
    return std::isfinite(q) && q == std::floor(q);
  }

  double to_double() const {
    std::string t = (negative ? "-0." : "0.") + (zero() ? std::string("0") : digits) + "e" + std::to_string(exponent);
    return std::strtod(t.c_str(), nullptr);
  }

  // As JSON writes it, shortest: 12.5, 1e+400, -3.
  std::string text() const {
    if (zero()) return "0";
    std::string out = negative ? "-" : "";
    int64_t n = int64_t(digits.size());
    if (exponent >= n && exponent <= 21) {
      out += digits;
      out.append(size_t(exponent - n), '0');
    } else if (exponent > 0 && exponent < n) {
      out += digits.substr(0, size_t(exponent)) + "." + digits.substr(size_t(exponent));
    } else if (exponent <= 0 && exponent > -7) {
      out += "0." + std::string(size_t(-exponent), '0') + digits;
    } else {
      out += digits.substr(0, 1);
      if (n > 1) out += "." + digits.substr(1);
      int64_t e = exponent - 1;
      out += (e < 0 ? "e-" : "e+") + std::to_string(e < 0 ? -e : e);
    }
    return out;
  }
};

}  // namespace edgeflow_validate
