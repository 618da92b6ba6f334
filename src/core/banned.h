/*
 * banned: functions that overflow, truncate silently or accept garbage.
 * Included into every translation unit by the build; use span_copy_cstr,
 * snprintf, span_parse_u64 instead.
 */
#ifndef POSTGATE_CORE_BANNED_H
#define POSTGATE_CORE_BANNED_H

#ifndef __cplusplus
/* System headers may declare these; poison only after they have been seen. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#pragma GCC poison strcpy strcat sprintf vsprintf strncpy gets atoi atol strtok
#endif

#endif
