# edgeflow_add_plugin(<name> SOURCES <files...> [LIBRARIES <targets...>] [NO_INSTALL])
# Builds <name> as a loadable plugin module (edgeflow-<name>.so) exporting only the ABI entry
# point, and installs it where the daemon looks for plugins (component `runtime`).
#
# Used in the edgeflow tree and, installed with the SDK, by out-of-tree plugin projects after
# find_package(EdgeflowSDK). In the tree, EDGEFLOW_PLUGIN_OUTPUT_DIR puts the module beside the
# daemon's build-tree plugins; out of the tree it stays in the project's own output directory
# (load it with `edgeflow run --plugin-dir <that dir>`), and both install to
# EDGEFLOW_PLUGIN_INSTALL_DIR, by default lib/edgeflow/plugins: the daemon looks for plugins
# relative to its own binary, never in a multiarch libdir. NO_INSTALL is for test-only plugins.
include_guard(GLOBAL)
include(GNUInstallDirs)

function(edgeflow_add_plugin name)
  cmake_parse_arguments(ARG "NO_INSTALL" "" "SOURCES;LIBRARIES" ${ARGN})
  set(target edgeflow_plugin_${name})
  add_library(${target} MODULE ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE EdgeflowSDK::sdk ${ARG_LIBRARIES})
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    OUTPUT_NAME "edgeflow-${name}"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  # GCC marks the static data of inline and template code (libstdc++'s among them) as unique
  # symbols, which the dynamic linker binds across every library loaded, RTLD_LOCAL or not: a
  # plugin then shared such data with the plugins loaded after it, and the first to define one
  # could never be unloaded. Plugins meet only through the C ABI; each keeps its own.
  target_compile_options(${target} PRIVATE $<$<CXX_COMPILER_ID:GNU>:-fno-gnu-unique>)
  if(DEFINED EDGEFLOW_PLUGIN_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${EDGEFLOW_PLUGIN_OUTPUT_DIR})
  endif()
  # A plugin reaches the host only through the callback table: any undefined symbol is a bug.
  # Sanitizer runtimes are the exception (clang resolves them from the executable), whether
  # the sanitizers come from the edgeflow tree's option or from a consumer's own flags.
  if(NOT EDGEFLOW_SANITIZE AND NOT "${CMAKE_CXX_FLAGS} ${CMAKE_MODULE_LINKER_FLAGS}" MATCHES "-fsanitize=")
    target_link_options(${target} PRIVATE -Wl,-z,defs)
  endif()
  if(DEFINED EDGEFLOW_PLUGIN_INSTALL_DIR)
    set(destination ${EDGEFLOW_PLUGIN_INSTALL_DIR})
  else()
    set(destination lib/edgeflow/plugins)
  endif()
  if(NOT ARG_NO_INSTALL)
    install(TARGETS ${target} LIBRARY DESTINATION ${destination} COMPONENT runtime)
  endif()
endfunction()
