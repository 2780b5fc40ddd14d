# edgeflow_add_plugin(<name> SOURCES <files...> [LIBRARIES <targets...>])
# Builds <name> as a loadable plugin module (edgeflow-<name>.so) exporting only the ABI entry
# point, placed where the runtime looks for plugins, and installed beside the daemon's.
function(edgeflow_add_plugin name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBRARIES" ${ARGN})
  set(target edgeflow_plugin_${name})
  add_library(${target} MODULE ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE EdgeflowSDK::sdk ${ARG_LIBRARIES})
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    OUTPUT_NAME "edgeflow-${name}"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(DEFINED EDGEFLOW_PLUGIN_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${EDGEFLOW_PLUGIN_OUTPUT_DIR})
  endif()
  # A plugin reaches the host only through the callback table: any undefined symbol is a bug.
  if(NOT EDGEFLOW_SANITIZE)
    target_link_options(${target} PRIVATE -Wl,-z,defs)
  endif()
  if(DEFINED EDGEFLOW_PLUGIN_INSTALL_DIR)
    install(TARGETS ${target} LIBRARY DESTINATION ${EDGEFLOW_PLUGIN_INSTALL_DIR} COMPONENT runtime)
  endif()
endfunction()
