# tokemb_set_warnings(target): the project's warning set; -Werror with TOKEMB_WERROR=ON (CI).
function(tokemb_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
                                           -Wno-unused-parameter)
  if(TOKEMB_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
