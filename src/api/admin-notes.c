/* admin-notes.c: admin.vm.notes.* (a qube's notes). */
#include "api-util.h"

const Method api_notes_methods[] = {
    {NULL},
};
