# The packages, a .deb and a .tar.gz of each component: `runtime` (edgeflow: the daemon and its
# plugins) and `sdk` (edgeflow-sdk: headers, CMake package, test harness), built with
#
#   cmake -S . -B build-pkg -G Ninja -DCMAKE_BUILD_TYPE=Release \
#         -DEDGEFLOW_BUILD_TESTS=OFF -DEDGEFLOW_BUILD_BENCH=OFF
#   cmake --build build-pkg --target package        # or: cd build-pkg && cpack -G DEB
#
# Included by the top-level CMakeLists.txt after every target exists, and by sdk/CMakeLists.txt
# when the SDK is built alone (then only the `sdk` package).

set(_ef_pkg ${CMAKE_CURRENT_LIST_DIR})
set(_ef_src ${_ef_pkg}/..)

if(TARGET edgeflow)
  # What the runtime component holds besides the daemon and plugins (installed by their own
  # CMakeLists): the systemd unit and user, the docs and example flows.
  install(FILES ${_ef_pkg}/systemd/edgeflow.service
          DESTINATION lib/systemd/system COMPONENT runtime)
  install(FILES ${_ef_pkg}/systemd/edgeflow.sysusers
          DESTINATION lib/sysusers.d RENAME edgeflow.conf COMPONENT runtime)
  install(FILES ${_ef_src}/README.md ${_ef_src}/docs/operator-guide.md
          DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT runtime OPTIONAL)
  install(FILES ${_ef_src}/examples/quickstart.yaml ${_ef_pkg}/examples/heartbeat.yaml
          DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples COMPONENT runtime)
  install(FILES ${_ef_pkg}/grafana/edgeflow.json DESTINATION ${CMAKE_INSTALL_DATADIR}/edgeflow/grafana COMPONENT runtime)
  set(CPACK_COMPONENTS_ALL runtime sdk)
else()
  set(CPACK_COMPONENTS_ALL sdk)
endif()
install(FILES ${_ef_src}/docs/plugin-guide.md DESTINATION share/doc/edgeflow-sdk COMPONENT sdk)

set(CPACK_PACKAGE_NAME edgeflow)
set(CPACK_PACKAGE_VENDOR "edgeflow")
set(CPACK_PACKAGE_CONTACT "edgeflow maintainers <maintainers@edgeflow.invalid>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "micro-integration runtime: plugin connectors and transformers in YAML-declared flows")
set(CPACK_PACKAGE_DESCRIPTION
    "One small daemon per edge site that loads connector and transformer plugins as shared \
libraries and runs the flows declared in /etc/edgeflow/flows.d, with end-to-end \
acknowledgement, retries and a local dead letter.")
set(CPACK_STRIP_FILES ON)
set(CPACK_VERBATIM_VARIABLES ON)

set(CPACK_GENERATOR "DEB;TGZ")
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_ARCHIVE_COMPONENT_INSTALL ON)

# .tar.gz: bin/edgeflow, lib/edgeflow/plugins/*.so, ... under one top folder; unpack anywhere.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set(_ef_arch x86_64)
else()
  string(TOLOWER "${CMAKE_SYSTEM_PROCESSOR}" _ef_arch)
endif()
set(CPACK_PACKAGE_FILE_NAME "edgeflow-${PROJECT_VERSION}-linux-${_ef_arch}")  # also the top folder
set(CPACK_ARCHIVE_RUNTIME_FILE_NAME "edgeflow-${PROJECT_VERSION}-linux-${_ef_arch}")
set(CPACK_ARCHIVE_SDK_FILE_NAME "edgeflow-sdk-${PROJECT_VERSION}-linux-${_ef_arch}")
set(CPACK_PROJECT_CONFIG_FILE ${_ef_pkg}/CPackPerGenerator.cmake)  # top folder for it only

# .deb: edgeflow_<version>_<arch>.deb installing under /usr (the DEB generator's default prefix).
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME edgeflow)
set(CPACK_DEBIAN_RUNTIME_FILE_NAME DEB-DEFAULT)
# A plugin package depends on the ABI, not on a release: `Depends: edgeflow-abi-1 (>= 1.3)`
# for a plugin built against ABI 1.3 (a daemon loads plugins of its ABI major, minor not newer).
set(CPACK_DEBIAN_RUNTIME_PACKAGE_PROVIDES
    "edgeflow-abi-${EDGEFLOW_ABI_MAJOR} (= ${EDGEFLOW_ABI_MAJOR}.${EDGEFLOW_ABI_MINOR})")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA
    ${_ef_pkg}/debian/postinst ${_ef_pkg}/debian/prerm ${_ef_pkg}/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
find_program(EDGEFLOW_DPKG_SHLIBDEPS dpkg-shlibdeps)
find_program(EDGEFLOW_FILE_PROGRAM file)  # CPack finds the ELF files with it
if(EDGEFLOW_DPKG_SHLIBDEPS AND EDGEFLOW_FILE_PROGRAM)
  # Computes Depends from the ELF files: libyaml-cpp0.7, libpqxx-6.4, libpq5, librdkafka1,
  # the Poco libraries, libssl3, libstdc++6, libc6, libgcc-s1.
  set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
else()
  # Debian 12's runtime libraries, written out when dpkg-shlibdeps is not there to compute them
  # (the same list as EDGEFLOW_RUNTIME_DEPS in scripts/lib/deps.sh, plus the C/C++ runtime).
  set(CPACK_DEBIAN_RUNTIME_PACKAGE_DEPENDS
      "libyaml-cpp0.7, libpqxx-6.4, libpq5, librdkafka1, libpoconet80, libpocofoundation80, libpoconetssl80, libpococrypto80, libssl3, libsqlite3-0, zlib1g, libstdc++6 (>= 12), libgcc-s1 (>= 3.0), libc6 (>= 2.34)")
endif()

# .deb: edgeflow-sdk_<version>_<arch>.deb. Its harness is a static archive (so no shlibdeps);
# what a plugin build needs beyond it is only recommended: the daemon is not among them.
set(CPACK_DEBIAN_SDK_PACKAGE_NAME edgeflow-sdk)
set(CPACK_DEBIAN_SDK_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_SDK_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_SDK_PACKAGE_SHLIBDEPS OFF)
set(CPACK_DEBIAN_SDK_PACKAGE_RECOMMENDS "cmake (>= 3.25), g++ (>= 12) | clang (>= 14), libgtest-dev")
set(CPACK_DEBIAN_SDK_PACKAGE_SUGGESTS "edgeflow")
set(CPACK_DEBIAN_SDK_DESCRIPTION
    "edgeflow plugin SDK: C ABI ${EDGEFLOW_ABI_MAJOR}.${EDGEFLOW_ABI_MINOR}, C++20 headers, CMake package and test harness
 Builds edgeflow connector and transformer plugins out of tree, with find_package(EdgeflowSDK),
 and unit-tests them with the harness library, which needs nothing else installed.
 Start with `edgeflow plugin new NAME --kind sink`.")
set(CPACK_COMPONENT_SDK_DESCRIPTION "${CPACK_DEBIAN_SDK_DESCRIPTION}")

# `cmake --build <dir> --target package_source`: the source tree without build output.
set(CPACK_SOURCE_GENERATOR TGZ)
set(CPACK_SOURCE_PACKAGE_FILE_NAME "edgeflow-${PROJECT_VERSION}-src")
set(CPACK_SOURCE_IGNORE_FILES "/\\.git/" "/build[^/]*/" "/edgeflow-state/" "/\\.edgeflow/")

include(CPack)
