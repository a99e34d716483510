/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "controller/controller.h"

int main(int argc, char **argv) {
        return vf_main(argc, argv);
}
