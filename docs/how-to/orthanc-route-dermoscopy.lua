-- Orthanc routing rule: forward each skin photograph that a modality sends to the SkinNet node.
--
-- Install: "LuaScripts": ["/etc/orthanc/route-dermoscopy.lua"] in orthanc.json, and the node as a modality:
--   "DicomModalities": { "skinnet": [ "SKINNET", "10.0.0.7", 11112 ] }
-- The node sends each image's SEG and SR back to Orthanc; those have other SOP classes, so they are not
-- forwarded again. Only images received over DICOM are forwarded (not REST uploads or re-imports).
-- Tested by tests/node/test_orthanc.py (test_orthanc_routes_dermoscopy_to_the_node_and_gets_the_results).

local SEGMENTED = {
  ["1.2.840.10008.5.1.4.1.1.77.1.7"] = true,  -- Dermoscopic Photography Image Storage
  ["1.2.840.10008.5.1.4.1.1.77.1.4"] = true,  -- VL Photographic Image Storage
  ["1.2.840.10008.5.1.4.1.1.77.1.2"] = true,  -- VL Microscopic Image Storage
}

function OnStoredInstance(instanceId, tags, metadata, origin)
  if SEGMENTED[tags["SOPClassUID"]] and origin["RequestOrigin"] == "DicomProtocol" then
    SendToModality(instanceId, "skinnet")
  end
end
