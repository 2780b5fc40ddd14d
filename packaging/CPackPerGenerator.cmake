# Read by cpack once per generator (CPACK_PROJECT_CONFIG_FILE), with CPACK_GENERATOR set to it.
# Only the .tar.gz gets a top folder (edgeflow-<version>-linux-<arch>/bin, lib, ...): the .deb
# must hold /usr/... at its root.
if(CPACK_GENERATOR STREQUAL "TGZ")
  set(CPACK_COMPONENT_INCLUDE_TOPLEVEL_DIRECTORY ON)
endif()
