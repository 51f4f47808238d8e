// The operators' workbook: runs by outcome and duration, rejections by reason, hygiene findings, queues and health.
// Its tiles live in workbooks/broker-operations.json; the {placeholders} there are filled in here.

@description('Region of the workbook.')
param location string

@description('Resource id of the Application Insights component the broker reports to.')
param applicationInsightsId string

@description('Resource id of the storage account that holds the broker\'s queues.')
param storageAccountId string

@description('The queues with triggers, whose <queue>-poison queues the workbook counts.')
param requestsQueue string
param workQueue string

param tags object = {}

var displayName = 'Serverless Deployment Broker: operations'
var template = loadTextContent('../workbooks/broker-operations.json')
var withResources = replace(replace(template, '{applicationInsightsId}', applicationInsightsId), '{storageAccountId}', storageAccountId)
var serializedData = replace(replace(withResources, '{requestsPoisonQueue}', '${requestsQueue}-poison'), '{workPoisonQueue}', '${workQueue}-poison')

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  // Workbook names are GUIDs; this one is stable per resource group and component.
  name: guid(resourceGroup().id, applicationInsightsId, 'broker-operations')
  location: location
  tags: union(tags, {
    'hidden-title': displayName
  })
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: applicationInsightsId
    serializedData: serializedData
    version: '1.0'
  }
}

output id string = workbook.id
