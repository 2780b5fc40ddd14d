// URI references as `$id` and `$ref` use them: resolution against a base (RFC 3986, 5.2) and the
// split at the fragment. Schemas name each other by URI; nothing here fetches anything.
#pragma once

#include <string>
#include <string_view>

namespace edgeflow_validate {

struct UriParts {
  std::string_view scheme, authority, path, query, fragment;
  bool has_scheme = false, has_authority = false, has_query = false, has_fragment = false;
};

inline UriParts split_uri(std::string_view u) {
  UriParts p;
  if (auto hash = u.find('#'); hash != std::string_view::npos) {
    p.fragment = u.substr(hash + 1);
    p.has_fragment = true;
    u = u.substr(0, hash);
  }
  if (auto q = u.find('?'); q != std::string_view::npos) {
    p.query = u.substr(q + 1);
    p.has_query = true;
    u = u.substr(0, q);
  }
  auto colon = u.find(':');
  auto slash = u.find('/');
  if (colon != std::string_view::npos && colon > 0 && (slash == std::string_view::npos || colon < slash)) {
    p.scheme = u.substr(0, colon);
    p.has_scheme = true;
    u = u.substr(colon + 1);
  }
  if (u.substr(0, 2) == "//") {
    u = u.substr(2);
    auto end = u.find('/');
    p.authority = u.substr(0, end);
    p.has_authority = true;
    u = end == std::string_view::npos ? std::string_view() : u.substr(end);
  }
  p.path = u;
  return p;
}

inline std::string remove_dot_segments(std::string_view in) {
  std::string out;
  while (!in.empty()) {
    if (in.substr(0, 3) == "../") in.remove_prefix(3);
    else if (in.substr(0, 2) == "./") in.remove_prefix(2);
    else if (in.substr(0, 3) == "/./") in.remove_prefix(2);
    else if (in == "/.") in = "/";
    else if (in.substr(0, 4) == "/../" || in == "/..") {
      in = in.size() == 3 ? std::string_view("/") : in.substr(3);
      auto cut = out.rfind('/');
      out.resize(cut == std::string::npos ? 0 : cut);
      if (in == "/") {
        out += '/';
        break;
      }
    } else if (in == "." || in == "..") {
      in = {};
    } else {
      size_t start = in[0] == '/' ? 1 : 0;
      size_t end = in.find('/', start);
      out.append(in.substr(0, end));
      in = end == std::string_view::npos ? std::string_view() : in.substr(end);
    }
  }
  return out;
}

// `ref` resolved against `base`.
inline std::string resolve_uri(std::string_view base, std::string_view ref) {
  UriParts r = split_uri(ref), b = split_uri(base);
  std::string scheme(r.has_scheme ? r.scheme : b.scheme), authority, path, query;
  bool has_authority = false, has_query = false;
  if (r.has_scheme || r.has_authority) {
    has_authority = r.has_authority;
    authority = r.authority;
    path = remove_dot_segments(r.path);
    has_query = r.has_query;
    query = r.query;
  } else {
    has_authority = b.has_authority;
    authority = b.authority;
    if (r.path.empty()) {
      path = b.path;
      has_query = r.has_query || b.has_query;
      query = r.has_query ? r.query : b.query;
    } else {
      if (r.path[0] == '/') {
        path = remove_dot_segments(r.path);
      } else {
        std::string merged;
        if (b.has_authority && b.path.empty()) merged = "/" + std::string(r.path);
        else {
          auto cut = b.path.rfind('/');
          merged = std::string(cut == std::string_view::npos ? std::string_view() : b.path.substr(0, cut + 1)) +
                   std::string(r.path);
        }
        path = remove_dot_segments(merged);
      }
      has_query = r.has_query;
      query = r.query;
    }
  }
  std::string out;
  if (!scheme.empty()) out += scheme + ":";
  if (has_authority) out += "//" + authority;
  out += path;
  if (has_query) out += "?" + query;
  if (r.has_fragment) out += "#" + std::string(r.fragment);
  return out;
}

// The URI without its fragment, and the fragment.
inline std::pair<std::string, std::string> split_fragment(std::string_view u) {
  auto hash = u.find('#');
  if (hash == std::string_view::npos) return {std::string(u), ""};
  return {std::string(u.substr(0, hash)), std::string(u.substr(hash + 1))};
}

}  // namespace edgeflow_validate
